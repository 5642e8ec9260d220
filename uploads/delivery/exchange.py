"""One HTTP exchange with a vendor, and its row in the call log.

Each exchange's row is written before the request goes out, in a transaction of its own: a
worker killed mid-attempt leaves the request it made in the call log. The answer completes the
row when it is in; a dispatch's attempt writes its last answer with the attempt's outcome, in
the outcome's own statement (dispatch.finish_attempt): one write fewer per file, and a worker
killed in between leaves a request without its answer, as a kill during the request does. On
PostgreSQL these commits do not wait for the disk (synchronous_commit off, for them alone):
they are visible at once and durable within a fraction of a second, so only a crash of the
database's machine in that fraction could lose a row; waiting for the disk cost a few
milliseconds each. Redirects are followed by hand, at most five, and every hop's connection is
checked by the guarded session (safety.py) at connect time.
"""

import hashlib
import os
import time
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.utils import timezone

from portal.db import unflushed

from ..models import CallLog, Dispatch
from . import safety
from .client import Body, OutboundRequest, VendorAnswer
from .redaction import SECRET_HEADERS

EXCERPT_BYTES = 64 * 1024  # of a response, kept in the call log
REQUEST_EXCERPT_BYTES = 2048  # of a request body, kept so that a dry run shows what would go
MAX_REDIRECTS = 5
KEPT_RESPONSE_HEADERS = {
    "content-type", "content-length", "location", "retry-after", "date", "server", "x-request-id", "request-id",
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
}
ANSWER_FIELDS = ("status_code", "response_headers", "response_excerpt", "duration_ms", "error_class", "error_message")

_sessions = {}  # process id → the guarded session this worker process reuses (keep-alive, TLS reuse)


def shared_session():
    """One pooled, guarded session per worker process: connections to a vendor are kept alive
    and reused from one send to the next instead of a TCP and TLS handshake per file."""
    pid = os.getpid()
    if pid not in _sessions:
        _sessions.clear()  # a forked child must not share its parent's sockets
        session = safety.guarded_session()
        # The session reads nothing from the environment (REQUESTS_CA_BUNDLE included): a vendor
        # whose certificate a private CA signed is trusted through the setting alone.
        session.verify = getattr(settings, "PORTAL_OUTBOUND_CA_BUNDLE", "") or True
        _sessions[pid] = session
    return _sessions[pid]


def timeouts():
    return settings.PORTAL_OUTBOUND_CONNECT_TIMEOUT, settings.PORTAL_OUTBOUND_READ_TIMEOUT


def attempt_lease_seconds():
    """How long an attempt may go without a sign of life before it counts as abandoned.

    The claim is renewed as the attempt works (each exchange it starts, and every few seconds
    while a body streams: Exchanges.renew_claim), so the lease needs to cover one exchange's
    silence only: its timeouts and a margin. A worker killed mid-send is taken over about a
    minute later with the defaults, however long the attempt had been running.
    """
    return sum(timeouts()) + 30


class Exchanges:
    """Makes one attempt's HTTP exchanges, each logged as it happens.

    For a dispatch (sending an upload), or for an integration alone: a pull that reads a
    vendor's API is logged against the integration, with no upload to hang on.
    """

    def __init__(self, dispatch, attempt, redactor, session=None, integration=None, answers_with_outcome=False):
        self.dispatch = dispatch
        self.integration = integration or dispatch.upload.integration
        self.attempt = attempt
        self.redactor = redactor
        self.session = session
        self.rows = []
        # The last answer waits for last_row_update() (it is written before any later write).
        self.answers_with_outcome = answers_with_outcome
        self.unwritten = None  # the row whose answer is not written yet
        self.timeout = timeouts()
        self._renewed = time.monotonic()  # the claim was just made

    def renew_claim(self):
        """A sign of life for the attempt's claim (see attempt_lease_seconds), written at most
        every quarter of a lease: each exchange's start and a streaming body's reads call it."""
        sending = self.dispatch is not None and self.dispatch.status == Dispatch.Status.SENDING
        if not sending or time.monotonic() - self._renewed < attempt_lease_seconds() / 4:
            return
        self._renewed = time.monotonic()
        Dispatch.objects.filter(pk=self.dispatch.pk, status=Dispatch.Status.SENDING, attempts=self.attempt).update(
            claimed_at=timezone.now())

    def exchange(self, request: OutboundRequest) -> VendorAnswer:
        """Send a request, following redirects by hand; the last answer. Raises
        safety.RefusedDestination for a refused address, requests' exceptions for the rest."""
        method, url, headers, body = request.method, request.url, dict(request.headers), request.body
        for _ in range(MAX_REDIRECTS + 1):
            self.renew_claim()
            with _opened(body, self.renew_claim) as data:
                prepared = self.session.prepare_request(requests.Request(method, url, headers=headers, data=data))
                if isinstance(body, Body):
                    prepared.headers["Content-Length"] = str(body.size)
                    prepared.headers.pop("Transfer-Encoding", None)
                row = self.start(prepared, body)
                started = time.monotonic()
                try:
                    safety.check_url(url)  # every hop, before its connection is even tried
                    response = self.session.send(prepared, timeout=self.timeout, stream=True, allow_redirects=False)
                except (safety.RefusedDestination, requests.RequestException) as exc:
                    refused = exc if isinstance(exc, safety.RefusedDestination) else safety.refused_cause(exc)
                    self.finish(row, started, error=refused or exc)
                    raise refused or exc from None
            # The status is in: a body that breaks off later does not undo it (a 201 stays
            # delivered, and is not sent again).
            try:
                content, truncated, read_error = _read_capped(response, started + sum(self.timeout))
            finally:
                response.close()
            answer = VendorAnswer(response.status_code, response.headers, content, truncated)
            self.finish(row, started, answer=answer, error=read_error)
            if not response.is_redirect:
                return answer
            next_url = urljoin(url, response.headers["Location"])
            method, body = _redirected(response.status_code, method, body)
            if urlsplit(next_url).netloc != urlsplit(url).netloc:
                # Credentials were meant for the first host only (as requests does it).
                headers = {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}
            url = next_url
        raise requests.TooManyRedirects(f"More than {MAX_REDIRECTS} redirects.")

    def keep_progress(self, progress):
        """Store the client's progress on the dispatch now, mid-attempt (batches already delivered …):
        should this worker die, the attempt that takes over resumes from there."""
        if self.dispatch is not None:
            self.write_answer()  # the progress never runs ahead of the call log
            Dispatch.objects.filter(pk=self.dispatch.pk).update(progress=progress)

    def start(self, prepared, body, dry_run=False, note="", error=None):
        """The exchange's row, written before the request goes out."""
        self.write_answer()
        redact = self.redactor
        size, sha256, excerpt = _describe(body if body is not None else prepared.body, excerpt=dry_run)
        with unflushed():
            row = CallLog.objects.create(
                tenant_id=self.integration.tenant_id, integration_id=self.integration.pk,
                upload_id=self.dispatch.upload_id if self.dispatch else None, dispatch=self.dispatch,
                attempt=self.attempt, dry_run=dry_run, method=prepared.method, url=redact.url(prepared.url),
                request_headers=redact.headers(prepared.headers), request_body_size=size, request_body_sha256=sha256,
                request_body_excerpt=redact.text(excerpt) if dry_run else "",
                error_class=type(error).__name__ if error else "",
                error_message=redact.error(error, prepared.url)[:2000] if error else note,
            )
        self.rows.append(row)
        return row

    def finish(self, row, started, answer=None, error=None):
        """The answer (or the failure) on the row: written now, or kept for the outcome."""
        redact = self.redactor
        row.status_code = answer.status_code if answer else None
        row.response_headers = ({k: redact.text(v) for k, v in answer.headers.items()
                                 if k.lower() in KEPT_RESPONSE_HEADERS} if answer else {})
        row.response_excerpt = redact.text(answer.text) if answer else ""
        row.duration_ms = int((time.monotonic() - started) * 1000)
        row.error_class = type(error).__name__ if error else ""
        row.error_message = redact.error(error, row.url)[:2000] if error else ""
        self.unwritten = row
        if not self.answers_with_outcome:
            self.write_answer()

    def write_answer(self):
        if self.unwritten is not None:
            with unflushed():
                self.unwritten.save(update_fields=ANSWER_FIELDS)
            self.unwritten = None

    def last_row_update(self, **more):
        """The last row's answer, if not written yet, and `more` of its fields, as (queryset,
        changes) for the attempt's outcome to write in its own statement; None if there is nothing."""
        if not self.rows:
            return None
        row = self.rows[-1]
        changes = {name: getattr(row, name) for name in ANSWER_FIELDS} if row is self.unwritten else {}
        for name, value in more.items():
            setattr(row, name, value)
            changes[name] = value
        self.unwritten = None
        return (CallLog.objects.filter(pk=row.pk), changes) if changes else None


class _opened:
    """A Body opened for one send (and closed after it); bytes as they are. Each read of a
    streamed body calls `on_read`, so that a long upload keeps its attempt's claim alive."""

    def __init__(self, body, on_read=None):
        self.body, self.file, self.on_read = body, None, on_read

    def __enter__(self):
        if isinstance(self.body, Body):
            self.file = self.body.open()
            return _Reading(self.file, self.on_read) if self.on_read else self.file
        return self.body or None

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.close()


class _Reading:
    """A file that calls back on each read (everything else is the file's own)."""

    def __init__(self, file, on_read):
        self._file, self._on_read = file, on_read

    def read(self, *size):
        self._on_read()
        return self._file.read(*size)

    def __iter__(self):
        return iter(lambda: self.read(64 * 1024), b"")

    def __getattr__(self, name):
        return getattr(self._file, name)


def _describe(body, excerpt):
    """(size, sha256, the start as text if `excerpt`) of a request body, without reading a
    streamed one whole (nor opening it only to log nothing)."""
    if isinstance(body, Body):
        if not excerpt:
            return body.size, body.sha256, ""
        with body.open() as file:
            start = file.read(REQUEST_EXCERPT_BYTES)
        return body.size, body.sha256, start.decode("utf-8", errors="replace")
    data = body or b""
    if isinstance(data, str):
        data = data.encode()
    return len(data), hashlib.sha256(data).hexdigest(), data[:REQUEST_EXCERPT_BYTES].decode("utf-8", errors="replace")


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

