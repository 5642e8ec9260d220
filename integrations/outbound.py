"""Outbound dispatch: sending an upload to a vendor, with every HTTP exchange in the history.

Shared by every protocol. A protocol's client (integrations/protocols/<protocol>.py,
registered in CLIENTS below) says which requests to make and what the vendor's answers
mean; this module makes the calls and owns everything they have in common:

- safety: https only, and no loopback / private / link-local hosts, unless the host's
  network is listed in settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS; redirects are followed
  by hand so that every hop is checked the same way;
- one requests.Session per attempt, connect and read timeouts, at most 64 KB of a response
  read;
- one CallLog row per exchange, with secrets redacted before anything is stored or logged;
- retries (connection errors, timeouts, 5xx, 429) with exponential backoff and jitter,
  delay = max(backoff, Retry-After), up to the integration's max_attempts; other 4xx fail
  at once and keep the vendor's error ids.

Services: send_upload() and resend_upload() (the upload form, the automation API) and
run_attempt() (the Celery task in integrations/tasks.py, the benchmark).
"""

import hashlib
import ipaddress
import json
import logging
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote, urljoin, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from portal.audit import Action, actor_label, record

from . import attempts
from .models import CallLog, Dispatch, Protocol

log = logging.getLogger(__name__)

# Protocol → its outbound client. The other reference protocols join here, one module each.
CLIENTS = {
    Protocol.DATA_INTEGRATION: "integrations.protocols.data_integration.DataIntegrationClient",
}

EXCERPT_BYTES = 64 * 1024  # of a response, kept in the call log
REQUEST_EXCERPT_BYTES = 2048  # of a request body, kept so that a dry run shows what would go
MAX_REDIRECTS = 5
MAX_DELAY_SECONDS = 24 * 3600  # a Retry-After beyond a day is not worth waiting for
REDACTED = "[redacted]"
SECRET_HEADERS = {"authorization", "proxy-authorization", "auth-api-token", "x-api-key", "cookie", "set-cookie"}
SECRET_QUERY_PARAMS = {
    "token", "access_token", "auth_token", "api_key", "apikey", "key", "secret", "client_secret", "password",
    "sig", "signature", "x-amz-signature", "x-amz-security-token", "x-amz-credential",
}
KEPT_RESPONSE_HEADERS = {
    "content-type", "content-length", "location", "retry-after", "date", "server", "x-request-id", "request-id",
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
}


def _setting(name, default):
    return getattr(settings, name, default)


# --- Errors -----------------------------------------------------------------------------


class RefusedDestination(Exception):
    """The URL may not be called (scheme, or a non-public address not allowed). Never retried."""


class NotConfigured(Exception):
    """The integration cannot send: no client for its protocol, or no vendor credentials."""


# --- Safety -----------------------------------------------------------------------------


def allowed_networks():
    networks = []
    for text in settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS:
        if text.strip():
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
    return networks


def check_destination(url, resolve=True):
    """Raise RefusedDestination unless the URL may be called.

    A host must resolve only to public addresses, or to addresses in an allowed network;
    plain http is allowed only for hosts whose addresses are all in an allowed network.
    With resolve=False (a dry run makes no network call, DNS included) only what the URL
    itself shows is checked: the scheme, and a literal IP address.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedDestination(f"Only https URLs can be called, not {parts.scheme or 'a relative URL'}.")
    host = parts.hostname
    if not host:
        raise RefusedDestination("The URL names no host.")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return  # whether a named host is allowed depends on what it resolves to
        addresses = _resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    networks = allowed_networks()
    for address in addresses:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        allowed = any(address in network for network in networks)
        if not allowed and (not address.is_global or address.is_multicast):
            raise RefusedDestination(
                f"{host} resolves to {address}, a non-public address; it can only be called if "
                "PORTAL_OUTBOUND_ALLOWED_NETWORKS lists its network."
            )
        if not allowed and parts.scheme != "https":
            raise RefusedDestination(f"{host}: plain http is only allowed to hosts in "
                                     "PORTAL_OUTBOUND_ALLOWED_NETWORKS; use https.")


def _resolve(host, port):
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # Passing DNS trouble: a connection error, so the attempt is retried.
        raise requests.ConnectionError(f"Cannot resolve {host}: {exc.strerror}") from None
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


# --- Redaction --------------------------------------------------------------------------


class Redactor:
    """Replaces secrets in whatever goes into the call log, the upload's errors or a log line."""

    def __init__(self, secrets=()):
        found = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= 4:
                found.update({secret, quote(secret, safe="")})
        self.secrets = sorted(found, key=len, reverse=True)

    def text(self, value):
        value = str(value)
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        return value

    def error(self, error, url):
        """An exception's text, with the URL's query (which it may quote) redacted like the URL."""
        text = str(error)
        query = urlsplit(url).query
        if query:
            text = text.replace(query, urlsplit(self.url(url)).query)
        return self.text(text)

    def headers(self, headers):
        return {name: REDACTED if name.lower() in SECRET_HEADERS else self.text(value)
                for name, value in headers.items()}

    def url(self, url):
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        query = "&".join(
            f"{quote(name, safe='')}={REDACTED}" if name.lower() in SECRET_QUERY_PARAMS
            else f"{quote(name, safe='')}={quote(value, safe='')}"
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ) if parts.query else ""
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


# --- Requests, answers and what they mean -----------------------------------------------


@dataclass
class OutboundRequest:
    method: str
    url: str
    headers: dict
    body: bytes = b""


@dataclass
class VendorAnswer:
    """What came back: the status, the headers, and at most 64 KB of the body."""

    status_code: int
    headers: dict
    content: bytes
    truncated: bool = False

    @property
    def text(self):
        return self.content.decode("utf-8", errors="replace")


@dataclass
class Outcome:
    delivered: bool
    retryable: bool = False
    message: str = ""
    errors: list = field(default_factory=list)
    retry_after: float | None = None


def error(error_id, description):
    return {"id": str(error_id), "description": str(description), "row": None, "column": None}


def parse_retry_after(value, now=None):
    """Retry-After in seconds, from seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or timezone.now())).total_seconds())


def retry_delay(attempt, retry_after=None):
    """Exponential backoff with ±20 % jitter, but never sooner than the vendor asked."""
    base = _setting("PORTAL_OUTBOUND_BACKOFF_SECONDS", 10)
    cap = _setting("PORTAL_OUTBOUND_MAX_BACKOFF_SECONDS", 3600)
    backoff = min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
    return min(MAX_DELAY_SECONDS, max(backoff, retry_after or 0))


def vendor_errors(answer):
    """The vendor's error ids and descriptions: seed 000's {"errors": [{"id", "description"}]},
    a bare list of them, or DRF's {"detail"}; otherwise the status and the start of the body."""
    try:
        data = json.loads(answer.content)
    except ValueError:
        data = None
    items = data.get("errors", data.get("detail")) if isinstance(data, dict) else data
    if isinstance(items, (str, dict)):
        items = [items]
    found = []
    if isinstance(items, list):
        for item in items[:100]:
            if isinstance(item, dict):
                entry = error(item.get("id") or item.get("code") or f"http_{answer.status_code}",
                              item.get("description") or item.get("detail") or item.get("message") or item)
                entry["row"], entry["column"] = item.get("row"), item.get("column")
                found.append(entry)
            else:
                found.append(error(f"http_{answer.status_code}", item))
    if not found:
        found.append(error(f"http_{answer.status_code}", answer.text[:500] or "The vendor gave no details."))
    return found


def failure(answer):
    """What a non-delivered answer means: 429 and 5xx are passing, anything else is not."""
    if answer.status_code == 429 or answer.status_code >= 500:
        return Outcome(False, retryable=True, message=f"The vendor answered {answer.status_code}.",
                       errors=vendor_errors(answer), retry_after=parse_retry_after(answer.headers.get("Retry-After")))
    return Outcome(False, message=f"The vendor refused the file ({answer.status_code}).", errors=vendor_errors(answer))


class OutboundClient:
    """A protocol's client. Subclasses say which request to make and which answers mean delivered;
    a protocol that needs several exchanges (a token, then the upload) overrides send()."""

    delivered_statuses = {200, 201, 202}

    def __init__(self, integration, credentials):
        self.integration = integration
        self.credentials = credentials

    def secrets(self):
        """Every string among the vendor credentials: none of them is ever stored or logged."""
        return [value for value in self.credentials.values() if isinstance(value, str)]

    def prepare(self, upload, body) -> OutboundRequest:
        raise NotImplementedError

    def send(self, http, upload, body) -> Outcome:
        answer = http.exchange(self.prepare(upload, body))
        return self.interpret(answer)

    def interpret(self, answer) -> Outcome:
        if answer.status_code in self.delivered_statuses:
            return Outcome(True, message=f"Delivered: the vendor answered {answer.status_code}.")
        return failure(answer)


def client_for(integration):
    path = CLIENTS.get(integration.protocol)
    if path is None:
        raise NotConfigured(f"The portal cannot send with the {integration.get_protocol_display()} protocol yet.")
    try:
        credentials = integration.read_vendor_credentials()
    except ValueError as exc:
        raise NotConfigured(str(exc)) from None
    return import_string(path)(integration, credentials)


# --- Making the exchanges -----------------------------------------------------------------


class Exchanges:
    """Makes one attempt's HTTP exchanges and keeps one CallLog row for each; the rows are
    written together with the attempt's outcome (attempts.write_outcome)."""

    def __init__(self, dispatch, attempt, redactor, session):
        self.dispatch = dispatch
        self.attempt = attempt
        self.redactor = redactor
        self.session = session
        self.rows = []
        self.timeout = (_setting("PORTAL_OUTBOUND_CONNECT_TIMEOUT", 5), _setting("PORTAL_OUTBOUND_READ_TIMEOUT", 30))

    def exchange(self, request: OutboundRequest) -> VendorAnswer:
        """Send a request, following redirects by hand (each hop checked); the last answer."""
        method, url, headers, body = request.method, request.url, dict(request.headers), request.body
        for _ in range(MAX_REDIRECTS + 1):
            prepared = self.session.prepare_request(
                requests.Request(method, url, headers=headers, data=body or None))
            started = time.monotonic()
            response = None
            try:
                check_destination(url)
                response = self.session.send(prepared, timeout=self.timeout, stream=True, allow_redirects=False)
            except (RefusedDestination, requests.RequestException) as exc:
                self.record(prepared, started, error=exc)
                if isinstance(exc, RefusedDestination):
                    log.warning("Outbound call refused: %s %s: %s", method, self.redactor.url(url), exc)
                raise
            # The status is in: a body that breaks off later does not undo it (a 201 stays
            # delivered, and is not sent again).
            try:
                content, truncated, read_error = _read_capped(response, started + sum(self.timeout))
            finally:
                response.close()
            answer = VendorAnswer(response.status_code, response.headers, content, truncated)
            self.record(prepared, started, answer=answer, error=read_error)
            if not response.is_redirect:
                return answer
            next_url = urljoin(url, response.headers["Location"])
            method, body = _redirected(response.status_code, method, body)
            if urlsplit(next_url).netloc != urlsplit(url).netloc:
                # Credentials were meant for the first host only (as requests does it).
                headers = {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}
            url = next_url
        raise requests.TooManyRedirects(f"More than {MAX_REDIRECTS} redirects.")

    def record(self, prepared, started, answer=None, error=None, dry_run=False, note=""):
        when = timezone.now() - timedelta(seconds=time.monotonic() - started)
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        redact = self.redactor
        row = CallLog(
            tenant_id=self.dispatch.tenant_id, upload_id=self.dispatch.upload_id, dispatch=self.dispatch,
            attempt=self.attempt, dry_run=dry_run, method=prepared.method, url=redact.url(prepared.url),
            request_headers=redact.headers(prepared.headers),
            request_body_size=len(body), request_body_sha256=hashlib.sha256(body).hexdigest(),
            request_body_excerpt=redact.text(body[:REQUEST_EXCERPT_BYTES].decode("utf-8", errors="replace"))
            if dry_run else "",
            status_code=answer.status_code if answer else None,
            response_headers={k: redact.text(v) for k, v in answer.headers.items()
                              if k.lower() in KEPT_RESPONSE_HEADERS} if answer else {},
            response_excerpt=redact.text(answer.text) if answer else "",
            duration_ms=0 if dry_run else int((time.monotonic() - started) * 1000),
            error_class=type(error).__name__ if error else "",
            error_message=redact.error(error, prepared.url)[:2000] if error else note, created_at=when,
        )
        self.rows.append(row)
        return row


def _read_capped(response, deadline):
    """At most EXCERPT_BYTES of the body, and no longer than the deadline: a vendor that drips
    its answer byte by byte cannot hold a worker. Returns (content, truncated, error): what
    was read before the body broke off is kept."""
    chunks, size, error = [], 0, None
    try:
        for chunk in response.iter_content(16 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > EXCERPT_BYTES or time.monotonic() > deadline:
                break
    except requests.RequestException as exc:
        error = exc
    content = b"".join(chunks)
    return content[:EXCERPT_BYTES], size > EXCERPT_BYTES, error


def _redirected(status, method, body):
    """The method and body after a redirect, as browsers and requests do it."""
    if status == 303 and method != "HEAD" or status in (301, 302) and method == "POST":
        return "GET", b""
    return method, body


# --- The services -------------------------------------------------------------------------


def send_upload(integration, data: bytes, *, content_type, channel, submitted_by=None, submitted_via="",
                filename=""):
    """Check a file against the integration's Data Format, store it and send it to the vendor.

    Raises uploads.errors.IntakeError for a bad file (nothing stored), ValidationError when
    the integration cannot send. In Sandbox Mode it is a dry run: the request that would be
    sent is logged, nothing goes out. Otherwise a Celery task sends it once this commits.
    """
    from uploads.intake import read_capped
    from uploads.models import Upload
    from uploads.parsing import parse_upload

    _check_can_send(integration)
    data = read_capped(data)  # the 15 MB limit of seed 000, for bytes or a stream
    parsed = parse_upload(integration, data, content_type)
    upload = Upload(
        tenant_id=integration.tenant_id, integration=integration, channel=channel,
        submitted_by=submitted_by if getattr(submitted_by, "is_authenticated", False) else None,
        submitted_via=str(submitted_via)[:200], sandbox=integration.sandbox, filename=(filename or "")[:255],
        content_type=(content_type or "")[:100], size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        records=parsed.records, status=Upload.Status.DRY_RUN if integration.sandbox else Upload.Status.SENDING,
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    upload.file.save(f"{stamp}-{integration.data_type}.{parsed.data_format}", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            upload.save()
            _start_dispatch(upload, submitted_via or actor_label(submitted_by), data)
    except BaseException:
        upload.file.storage.delete(upload.file.name)  # nothing stored on failure
        raise
    upload.refresh_from_db()
    return upload


def resend_upload(upload, actor):
    """A new series of attempts for an outbound upload, audited. ValidationError if it cannot."""
    from uploads.models import Upload

    with transaction.atomic():
        upload = Upload.objects.select_for_update().select_related("integration", "tenant").get(pk=upload.pk)
        integration = upload.integration
        if integration.is_inbound:
            raise ValidationError("Only an upload to an outbound integration can be resent.")
        if upload.status == Upload.Status.PURGED or not upload.file:
            raise ValidationError("This upload's file was purged; there is nothing to resend.")
        if upload.dispatches.filter(status__in=[Dispatch.Status.WAITING, Dispatch.Status.SENDING]).exists():
            raise ValidationError("This upload is still being sent; wait until it is delivered or fails.")
        _check_can_send(integration)
        with upload.file.open("rb") as stored:
            data = stored.read()
        Upload.objects.filter(pk=upload.pk).update(
            status=Upload.Status.SENDING, errors=[], message="", sandbox=integration.sandbox, finished_at=None)
        upload.refresh_from_db()
        dispatch = _start_dispatch(upload, actor_label(actor), data)
        record(upload.tenant, actor, Action.UPLOAD_RESENT, f"Upload #{upload.pk}", integration,
               upload=upload.pk, dispatch=dispatch.pk, dry_run=integration.sandbox)
    upload.refresh_from_db()
    return upload


def _check_can_send(integration):
    if integration.is_inbound:
        raise ValidationError("This integration receives files; it does not send them.")
    if not integration.enabled:
        raise ValidationError("This integration is disabled; enable it on its Settings tab to send.")
    if integration.protocol not in CLIENTS:
        raise ValidationError(f"The portal cannot send with the {integration.get_protocol_display()} protocol yet.")


def _start_dispatch(upload, requested_by, data):
    integration = upload.integration
    dispatch = Dispatch.objects.create(
        tenant_id=upload.tenant_id, upload=upload, max_attempts=max(1, integration.max_attempts),
        requested_by=str(requested_by)[:200],
        status=Dispatch.Status.DRY_RUN if integration.sandbox else Dispatch.Status.WAITING,
    )
    if integration.sandbox:
        _dry_run(dispatch, upload, data)
    else:
        from .tasks import send_dispatch

        transaction.on_commit(lambda: send_dispatch.delay(dispatch.pk, 1))
    return dispatch


def _dry_run(dispatch, upload, data):
    """Sandbox Mode: log the exact request that would be sent, redacted; send nothing."""
    from uploads.models import Upload

    now = timezone.now()
    message = "Sandbox Mode: the file was checked and the request logged; nothing was sent."
    try:
        client = client_for(upload.integration)
        request = client.prepare(upload, data)
    except NotConfigured as exc:
        Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DRY_RUN, message=str(exc)[:500],
                                                   started_at=now, finished_at=now)
        Dispatch.objects.filter(pk=dispatch.pk).update(finished_at=now)
        return
    with requests.Session() as session:
        session.trust_env = False  # as when it is sent: no .netrc credentials slipped in
        prepared = session.prepare_request(
            requests.Request(request.method, request.url, headers=request.headers, data=request.body or None))
    exchanges = Exchanges(dispatch, 1, Redactor(client.secrets()), session=None)
    try:
        check_destination(request.url, resolve=False)
    except RefusedDestination as exc:
        exchanges.record(prepared, time.monotonic(), error=exc, dry_run=True)
        message = f"Sandbox Mode: nothing was sent; out of Sandbox Mode this call would be refused: {exc}"
    else:
        exchanges.record(prepared, time.monotonic(), dry_run=True, note="Dry run (Sandbox Mode): not sent.")
    CallLog.objects.bulk_create(exchanges.rows)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DRY_RUN, message=message[:500],
                                               started_at=now, finished_at=now)
    Dispatch.objects.filter(pk=dispatch.pk).update(finished_at=now)


def attempt_lease_seconds():
    """How long an attempt may take before it counts as abandoned: both timeouts, redirects, a margin."""
    timeouts = _setting("PORTAL_OUTBOUND_CONNECT_TIMEOUT", 5) + _setting("PORTAL_OUTBOUND_READ_TIMEOUT", 30)
    return 2 * timeouts + 60


def requeue_stalled_dispatches():
    """Send the task again for dispatches whose task was lost; returns their ids.

    Stalled: waiting longer than PORTAL_REQUEUE_AFTER_SECONDS past its next attempt (or since
    it was created, for a first attempt), or sending under a claim older than a lease (its
    worker died). The claim (run_attempt) makes a task that was only slow harmless to send
    twice. Runs every few minutes (settings.CELERY_BEAT_SCHEDULE).
    """
    from .tasks import send_dispatch

    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.PORTAL_REQUEUE_AFTER_SECONDS)
    waiting = dict(Dispatch.objects.filter(
        Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, created_at__lt=cutoff),
        status=Dispatch.Status.WAITING,
    ).values_list("id", "attempts"))
    abandoned = dict(Dispatch.objects.filter(
        status=Dispatch.Status.SENDING, claimed_at__lt=now - timedelta(seconds=attempt_lease_seconds()),
    ).values_list("id", "attempts"))
    if not waiting and not abandoned:
        return []
    # Not again before another PORTAL_REQUEUE_AFTER_SECONDS, unless the task runs.
    Dispatch.objects.filter(id__in=waiting, status=Dispatch.Status.WAITING).update(next_attempt_at=now)
    log.warning("Sending of %d dispatch(es) stalled; queued again: %s", len(waiting) + len(abandoned),
                sorted([*waiting, *abandoned]))
    for dispatch_id, attempts_made in waiting.items():
        send_dispatch.delay(dispatch_id, attempts_made + 1)
    for dispatch_id, attempt in abandoned.items():
        send_dispatch.delay(dispatch_id, attempt)  # run_attempt takes the attempt over
    return sorted([*waiting, *abandoned])


def abandoned_attempt_check_in(dispatch_id, attempt):
    """Seconds until attempt n of a dispatch could be taken over, if another worker holds it now.

    A task whose worker died is delivered again (acks late) while the dead worker's claim
    still stands; this tells it when to look again. None when there is nothing to wait for.
    """
    claimed_at = (Dispatch.objects.filter(pk=dispatch_id, status=Dispatch.Status.SENDING, attempts=attempt)
                  .values_list("claimed_at", flat=True).first())
    if claimed_at is None:
        return None
    expires = claimed_at + timedelta(seconds=attempt_lease_seconds())
    return max(1.0, (expires - timezone.now()).total_seconds() + 1)


def run_attempt(dispatch_id, attempt):
    """Make attempt number `attempt` of a dispatch. Returns the seconds until the next attempt,
    or None when there is none (delivered, failed for good, or not ours to make)."""
    dispatch = attempts.claim(dispatch_id, attempt, timezone.now(), attempt_lease_seconds())
    if dispatch is None:
        return None
    upload = dispatch.upload
    started_at = timezone.now()

    exchanges = None
    try:
        client = client_for(upload.integration)
        if not upload.file:
            raise NotConfigured("The upload's file was purged; there is nothing to send.")
        with upload.file.open("rb") as stored:
            body = stored.read()
        with requests.Session() as session:
            session.trust_env = False  # no proxies or .netrc from the worker's environment
            exchanges = Exchanges(dispatch, attempt, Redactor(client.secrets()), session)
            outcome = client.send(exchanges, upload, body)
    except NotConfigured as exc:
        outcome = Outcome(False, message=str(exc), errors=[error("outbound_not_configured", exc)])
    except RefusedDestination as exc:
        outcome = Outcome(False, message=f"Refused: {exc}", errors=[error("outbound_refused", exc)])
    except (requests.Timeout, requests.ConnectionError) as exc:
        outcome = Outcome(False, retryable=True, message=f"{type(exc).__name__}: {exc}",
                          errors=[error("outbound_unreachable", f"{type(exc).__name__}: {exc}")])
    except requests.RequestException as exc:
        outcome = Outcome(False, message=f"{type(exc).__name__}: {exc}",
                          errors=[error("outbound_request_failed", f"{type(exc).__name__}: {exc}")])
    except Exception as exc:  # noqa: BLE001 - a bug or a broken file must not leave the dispatch "sending"
        redactor = exchanges.redactor if exchanges else Redactor()
        log.error("Outbound dispatch %s attempt %s failed: %s: %s", dispatch_id, attempt, type(exc).__name__,
                  redactor.text(exc))
        outcome = Outcome(False, message=f"The portal could not send the file ({type(exc).__name__}).",
                          errors=[error("outbound_internal_error", f"{type(exc).__name__}: {exc}")])
    return _finish_attempt(dispatch, attempt, outcome, exchanges or Exchanges(dispatch, attempt, Redactor(), None),
                           started_at)


def _finish_attempt(dispatch, attempt, outcome, exchanges, started_at):
    """Write the attempt's call-log rows and what it means for the dispatch and the upload."""
    from uploads.models import Upload

    now = timezone.now()
    errors = [{**e, "description": exchanges.redactor.text(e["description"])[:1000]} for e in outcome.errors]
    message = exchanges.redactor.text(outcome.message)
    retrying = outcome.retryable and attempt < dispatch.max_attempts
    delay = retry_delay(attempt, outcome.retry_after) if retrying else None
    # The upload's first attempt began when this one did, unless an earlier one did (loaded
    # after the claim; a resend waits until no dispatch of the upload is active).
    started = dispatch.upload.started_at or started_at
    if outcome.delivered:
        dispatch_changes = {"status": Dispatch.Status.DELIVERED, "finished_at": now}
        upload_changes = {"status": Upload.Status.DELIVERED, "errors": [], "finished_at": now, "started_at": started,
                          "message": f"{message} (attempt {attempt})"[:500]}
    elif retrying:
        dispatch_changes = {"status": Dispatch.Status.WAITING, "next_attempt_at": now + timedelta(seconds=delay)}
        upload_changes = {"errors": errors, "started_at": started, "message": (
            f"Attempt {attempt} of {dispatch.max_attempts} failed: {message} Retrying in {delay:.0f} s.")[:500]}
        if exchanges.rows:
            exchanges.rows[-1].retry_in_seconds = round(delay, 3)
    else:
        tail = f" after {attempt} attempts" if outcome.retryable else ""
        dispatch_changes = {"status": Dispatch.Status.FAILED, "finished_at": now}
        upload_changes = {"status": Upload.Status.NOT_DELIVERED, "errors": errors, "finished_at": now,
                          "started_at": started, "message": f"Not delivered{tail}: {message}"[:500]}
    attempts.write_outcome(dispatch, exchanges.rows, dispatch_changes, upload_changes)
    return delay
