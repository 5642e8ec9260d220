"""The request log: every request that reached a protocol's endpoint, accepted or not.

An admin's first question when a client's data does not arrive is "did anything come in, and
what did the portal answer?". Accepted submissions leave an upload, refused ones leave
nothing (all or nothing), so the middleware here writes a RequestLog row for each request to
an endpoint of the registry's protocols (their machine routes and their /api/v3/ routes), to
the REST API's upload action, and for each upload sent through the web form (the view notes
it with `note()`): tenant, integration, channel, status, error ids, size, client address,
time, and the upload it created.

What it keeps of a refused body is a short excerpt, secrets redacted, and only when the
request carried a valid credential. Requests without one are not attributable to a tenant:
they are counted, one row per minute, client address, protocol and status, with at most
UNAUTHENTICATED_ROWS_PER_MINUTE such rows a minute (the rest are folded into one row without
an address), so that a flood of bad requests cannot fill the table.
"""

import contextvars
import ipaddress
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db.models import Count, F, Max, Q, Sum
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone

from integrations import registry
from integrations.models import Integration, IntegrationToken

from . import reports
from .delivery.redaction import REDACTED, SECRET_QUERY_PARAMS
from .models import RequestLog, Upload

log = logging.getLogger(__name__)

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

EXCERPT_BYTES = 512  # of a refused body
MESSAGE_CHARS = 500
UNAUTHENTICATED_ROWS_PER_MINUTE = 100
REST_UPLOAD_ROUTES = {"api-integration-uploads"}  # POST /api/v3/integrations/{id}/uploads/
FAILURE_WINDOW = timedelta(days=7)  # what "recent failures" counts

# The uploads created while the current request is handled (see _note_upload).
_created_uploads = contextvars.ContextVar("created_uploads", default=None)


@dataclass
class Note:
    """What a view tells the log about a request the middleware would not recognise (the web form)."""

    integration: object
    channel: str
    status_code: int
    errors: list = field(default_factory=list)
    total: int | None = None
    message: str = ""
    excerpt: bytes = b""
    size: int = 0


def note(request, integration, *, channel, status_code, errors=(), total=None, message="", excerpt=b"", size=0):
    """Have this request logged (a view's own submission form): what was sent and what it was answered."""
    request._request_log_note = Note(integration, channel, status_code, list(errors), total, message, excerpt, size)


@receiver(post_save, sender=Upload, dispatch_uid="request_log_note_upload")
def _note_upload(sender, instance, created, **kwargs):
    found = _created_uploads.get()
    if created and found is not None:
        found.append(instance)


# --- Which requests are a protocol's ---------------------------------------------------------


def _view_key(callback):
    """The same view whatever as_view() call made the function: its class, else its own name."""
    cls = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    return cls if cls is not None else (callback.__module__, callback.__qualname__)


def _patterns(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            yield pattern


@cache
def _protocol_views():
    """View key → protocol slug, for every route the registry's protocols declare."""
    found = {}
    for protocol in registry.all_protocols():
        for pattern in _patterns([*protocol.urlpatterns(), *protocol.api_urlpatterns()]):
            found[_view_key(pattern.callback)] = protocol.slug
    return found


def endpoint_of(request):
    """(is it logged, protocol slug or "") for a request whose URL has been resolved."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return False, ""
    slug = _protocol_views().get(_view_key(match.func))
    if slug is not None:
        return True, slug
    return match.url_name in REST_UPLOAD_ROUTES, ""


# --- The middleware ----------------------------------------------------------------------------


class RequestLogMiddleware:
    """Writes a RequestLog row for each protocol request, and for each request a view noted."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        created = []
        token = _created_uploads.set(created)
        try:
            response = self.get_response(request)
        finally:
            _created_uploads.reset(token)
        logged, protocol = endpoint_of(request)
        noted = getattr(request, "_request_log_note", None)
        if logged or noted is not None:
            try:
                record(request, response, protocol, noted, created, started)
            except Exception:  # noqa: BLE001 - the answer matters more than its log line
                log.exception("Could not log the request to %s", request.path)
        return response

    def process_view(self, request, view, args, kwargs):
        if endpoint_of(request)[0]:
            _Excerpt.wrap(request)


class _Excerpt:
    """Wraps a request's body stream to keep the start of what the view reads (and count it)."""

    def __init__(self, stream):
        self.stream, self.head, self.read_bytes = stream, b"", 0

    def read(self, *args, **kwargs):
        chunk = self.stream.read(*args, **kwargs)
        self._keep(chunk)
        return chunk

    def readline(self, *args, **kwargs):
        chunk = self.stream.readline(*args, **kwargs)
        self._keep(chunk)
        return chunk

    def _keep(self, chunk):
        if chunk:
            self.read_bytes += len(chunk)
            if len(self.head) < EXCERPT_BYTES:
                self.head += bytes(chunk[:EXCERPT_BYTES - len(self.head)])

    def __getattr__(self, name):
        return getattr(self.stream, name)

    @classmethod
    def wrap(cls, request):
        # Views read a body through the request (Django's stream, capped at Content-Length), or
        # a chunked one straight from the server's input: watch both; only one is read.
        kept = []
        if hasattr(request, "_stream"):
            request._stream = cls(request._stream)
            kept.append(request._stream)
        if "wsgi.input" in request.META:
            request.META["wsgi.input"] = cls(request.META["wsgi.input"])
            kept.append(request.META["wsgi.input"])
        request._request_log_streams = kept

    @staticmethod
    def of(request):
        streams = getattr(request, "_request_log_streams", [])
        head = next((s.head for s in streams if s.head), b"")
        return head, max((s.read_bytes for s in streams), default=0)


# --- Writing a row ------------------------------------------------------------------------------


def record(request, response, protocol, noted, created, started):
    """Write the row for one request (or count it, without a valid credential)."""
    upload = created[0] if created else None
    integration = upload.integration if upload else (noted.integration if noted else None)
    if integration is None:
        integration = _integration_of(request, protocol)
    tenant_id = integration.tenant_id if integration else _tenant_id_of(request)
    status = noted.status_code if noted else response.status_code
    errors, total, message = (noted.errors, noted.total, noted.message) if noted else _answer(response)
    head, read = _Excerpt.of(request)
    size = (noted.size if noted else 0) or max(read, _content_length(request))
    row = RequestLog(
        tenant_id=tenant_id, integration=integration, upload=upload,
        protocol=protocol or (integration.protocol if integration else ""),
        channel=(noted.channel if noted else upload.channel if upload else _channel_of(request)),
        method=request.method[:10], path=request.path[:500], status_code=status,
        error_ids=list(dict.fromkeys(str(e.get("id", "")) for e in errors if isinstance(e, dict)))[:20],
        message=(message or (reports.report(errors, total).line() if errors else ""))[:MESSAGE_CHARS],
        size_bytes=size,
        client_address=_client_address(request), duration_ms=int((time.monotonic() - started) * 1000),
    )
    if tenant_id is None:
        _count_unattributed(row)
        return None
    if status >= 400:
        row.excerpt = redact_excerpt(noted.excerpt if noted and noted.excerpt else head)
    row.excerpt, row.message = storable(row.excerpt), storable(row.message)
    row.save()
    return row


def storable(text):
    """Text any database keeps: a refused body may hold NUL (PostgreSQL refuses it in text) or
    lone surrogates (not UTF-8); each becomes U+FFFD."""
    return UNSTORABLE.sub("\ufffd", text or "")


def _integration_of(request, protocol):
    """The integration a request's credential belongs to: the one the view authenticated, or, for a
    view that answered before authenticating (a missing trailing slash), the protocol's issued
    credential found in its header."""
    integration = getattr(getattr(request, "auth", None), "integration", None)
    if integration is not None:
        return integration
    tenant_id, match = _tenant_id_of(request), request.resolver_match
    if tenant_id and match.url_name in REST_UPLOAD_ROUTES:  # /api/v3/integrations/{pk}/uploads/
        return Integration.objects.filter(tenant_id=tenant_id, pk=match.kwargs.get("pk")).first()
    issued = registry.get(protocol).issued if protocol else None
    secret = _presented(request, issued.how_sent) if issued else ""
    if not secret:
        return None
    token = (IntegrationToken.objects.filter(kind=issued.kind, integration__protocol=protocol)
             .select_related("integration").find(secret))
    return token.integration if token else None


def _presented(request, how_sent):
    """The secret sent as `how_sent` says ("Authorization: Token AUTH_TOKEN", "X-API-KEY: <API key>")."""
    header, _, template = how_sent.partition(":")
    value = request.headers.get(header.strip(), "").strip()
    words = template.split()
    if len(words) > 1:  # a keyword before the secret: "Token AUTH_TOKEN"
        keyword, _, rest = value.partition(" ")
        return rest.strip() if keyword.lower() == words[0].lower() else ""
    return value


def _tenant_id_of(request):
    """A REST API token's tenant (a principal with a tenant), else None."""
    tenant = getattr(getattr(request, "user", None), "tenant", None)
    return getattr(tenant, "pk", None)


def _channel_of(request):
    match = request.resolver_match
    return Upload.Channel.API if match is not None and match.url_name in REST_UPLOAD_ROUTES else ""


def _content_length(request):
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _client_address(request):
    """The address the server saw (REMOTE_ADDR); behind PORTAL_PROXY_COUNT reverse proxies, the one
    the outermost of them saw: each appends its peer's address to X-Forwarded-For, so it is the
    PORTAL_PROXY_COUNT-th from the right. What stands further left is the client's own word, and
    is not read. A request that came past fewer proxies (the header is shorter) keeps REMOTE_ADDR."""
    address = request.META.get("REMOTE_ADDR") or ""
    proxies, forwarded = settings.PORTAL_PROXY_COUNT, request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        if len(hops) >= proxies:
            address = hops[-proxies]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    return None if getattr(parsed, "scope_id", None) else str(parsed)  # the database's inet has no zone


def _answer(response):
    """(errors, total, message) of a refusal in JSON: seed 000's {"errors": [...]}, or a {"message"} /
    {"detail"}; nothing for an accepted request (its answer is not read) or what is not JSON."""
    if (response.status_code < 400 or getattr(response, "streaming", False)
            or "json" not in response.get("Content-Type", "")):
        return [], None, ""
    try:
        data = json.loads(response.content[:1_000_000])
    except ValueError:
        return [], None, ""
    if isinstance(data, list):
        data = {"errors": data}
    if not isinstance(data, dict):
        return [], None, ""
    errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
    total = data.get("total") if isinstance(data.get("total"), int) else None
    said = data.get("message") or data.get("detail") or ""
    details = data.get("details") if isinstance(data.get("details"), list) else []
    if details:  # reference 004: {"message", "details": [{"field", "error"}]}
        errors += [{"id": "invalid_field", "description": d.get("error", ""), "column": d.get("field")}
                   for d in details if isinstance(d, dict)]
    return errors, total, str(said)


_SECRET_FIELDS = "|".join(sorted(map(re.escape, SECRET_QUERY_PARAMS | {"api-key", "x-api-key"}), key=len, reverse=True))
_SECRET_PATTERNS = [
    re.compile(rf'("(?:{_SECRET_FIELDS})"\s*:\s*")[^"]*(")', re.IGNORECASE),  # JSON "client_secret": "…"
    re.compile(rf"(\b(?:{_SECRET_FIELDS})=)[^&\s]*()", re.IGNORECASE),  # form client_secret=…
]


def redact_excerpt(head):
    """The start of a refused body as text, with anything named like a secret replaced."""
    text = bytes(head[:EXCERPT_BYTES]).decode("utf-8", errors="replace")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)
    return text


def _count_unattributed(row):
    """A request without a valid credential: counted per minute, address, protocol and status."""
    minute = row.created_at.replace(second=0, microsecond=0)
    same_minute = RequestLog.objects.filter(tenant=None, created_at=minute)
    bucket = same_minute.filter(protocol=row.protocol, status_code=row.status_code, client_address=row.client_address)
    if bucket.update(count=F("count") + 1, size_bytes=F("size_bytes") + row.size_bytes):
        return
    if same_minute.count() >= UNAUTHENTICATED_ROWS_PER_MINUTE:
        overflow = same_minute.filter(client_address=None, protocol="", status_code=0)
        if overflow.update(count=F("count") + 1):
            return
        row.protocol, row.status_code, row.path, row.message = "", 0, "", "Requests past the per-minute limit of rows."
        row.client_address = None
    row.integration, row.upload, row.created_at = None, None, minute
    row.excerpt, row.message, row.path = storable(row.excerpt), storable(row.message), storable(row.path)
    row.save()


# --- What the pages show --------------------------------------------------------------------------


def requests_of(tenant):
    return RequestLog.objects.filter(tenant=tenant).select_related("integration", "upload")


def failed(requests):
    return requests.filter(status_code__gte=400)


def health(integrations):
    """{integration id: {"last_success", "last_failure", "failures"}} over the request log and the
    uploads: a success is an accepted request or a processed / delivered upload, a failure a refused
    request or an upload that failed or was not delivered; failures count the last FAILURE_WINDOW."""
    ids = [i.pk for i in integrations]
    since = timezone.now() - FAILURE_WINDOW
    found = {pk: {"last_success": None, "last_failure": None, "failures": 0} for pk in ids}
    requests = (RequestLog.objects.filter(integration_id__in=ids).values("integration_id").annotate(
        last_success=Max("created_at", filter=Q(status_code__lt=400)),
        last_failure=Max("created_at", filter=Q(status_code__gte=400)),
        failures=Sum("count", filter=Q(status_code__gte=400, created_at__gte=since)),
    ))
    good, bad = [Upload.Status.PROCESSED, Upload.Status.DELIVERED], [Upload.Status.FAILED, Upload.Status.NOT_DELIVERED]
    uploads = (Upload.objects.filter(integration_id__in=ids).values("integration_id").annotate(
        last_success=Max("finished_at", filter=Q(status__in=good)),
        last_failure=Max("finished_at", filter=Q(status__in=bad)),
        failures=Count("id", filter=Q(status__in=bad, created_at__gte=since)),
    ))
    for row in [*requests, *uploads]:
        mine = found[row["integration_id"]]
        for name in ("last_success", "last_failure"):
            if row[name] and (mine[name] is None or row[name] > mine[name]):
                mine[name] = row[name]
        mine["failures"] += row["failures"] or 0
    for mine in found.values():
        mine["failing"] = bool(mine["last_failure"] and (not mine["last_success"]
                                                          or mine["last_failure"] > mine["last_success"]))
    return found


def rest_prefix():
    return reverse("schema").rsplit("schema/", 1)[0]  # /api/v3/


def described(rows):
    """The rows, each with `via`: how it came in ("Web form", "REST API", or its endpoint's path)."""
    rows, prefix = list(rows), rest_prefix()
    for entry in rows:
        entry.via = ("Web form" if entry.channel == Upload.Channel.WEB
                     else "REST API" if entry.path.startswith(prefix) else "")
    return rows


# --- Keeping the log to a size ------------------------------------------------------------


def prune(now=None):
    """Delete the rows older than PORTAL_REQUEST_LOG_DAYS (daily, from beat); returns how many.

    Uploads, their errors and the audit trail keep what happened to every accepted file; the
    request log is for the questions of the last weeks ("did anything come in?"), and would
    otherwise grow by a row per request for ever. In slices, so that no one delete holds the
    table (or, on SQLite, the database) for long."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.PORTAL_REQUEST_LOG_DAYS)
    deleted = 0
    while True:
        ids = list(RequestLog.objects.filter(created_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:5000])
        if not ids:
            return deleted
        deleted += RequestLog.objects.filter(id__in=ids).delete()[0]
