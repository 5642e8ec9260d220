"""How gunicorn serves the portal: `gunicorn -c python:portal.serving portal.wsgi`.

gthread workers: each connection holds a thread while its request (body included) is read
and answered. A client that announces a body and then sends it slowly, or never, holds its
thread; a dozen of them used to hold every thread of a small deployment. So:

- more threads per worker (threads are cheap; the work is mostly waiting on the database);
- every request body must arrive at a minimum pace: BodyDeadline gives it GRACE seconds
  plus one second per MIN_RATE bytes, then the read fails, the request is answered 408 (or
  in its endpoint's own shape, which the intake does) and the connection is closed.

In production a buffering reverse proxy in front (nginx with its default
proxy_request_buffering, client_body_timeout) absorbs slow clients before they reach a
thread at all; see docs/operations.md. Settings: WEB_WORKERS, WEB_THREADS,
PORTAL_BODY_GRACE_SECONDS, PORTAL_BODY_MIN_BYTES_PER_SECOND.
"""

import gc
import logging
import os
import socket
import time

from django.http.multipartparser import MultiPartParserError
from django.urls import get_resolver

log = logging.getLogger("portal.serving")

GRACE = float(os.environ.get("PORTAL_BODY_GRACE_SECONDS", "10"))
MIN_RATE = float(os.environ.get("PORTAL_BODY_MIN_BYTES_PER_SECOND", str(32 * 1024)))

# gunicorn settings (a module given to -c python:… is read for these names)
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "32"))
timeout = 300  # a worker whose main loop stops answering; threads are bounded by BodyDeadline
keepalive = 5
# The access log names the path only (%(U)s): query strings may carry signed URLs and keys.
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


def post_worker_init(worker):
    """Every request of this worker goes through BodyDeadline. What the worker loaded to serve
    (Django, the URLs with every view they import) is left out of the garbage collector's full
    collections, which otherwise walk it all, in the middle of a request (docs/performance.md)."""
    worker.wsgi = BodyDeadline(worker.wsgi)
    get_resolver().url_patterns  # imports every view now rather than at the first request
    gc.collect()
    gc.freeze()


class BrokenBody(MultiPartParserError):
    """The request body broke off: the client stopped short of its Content-Length, or sent chunks
    that cannot be read. Django answers it 400 (it is a MultiPartParserError, for forms too) and
    so does DRF (a parse error); the intake answers it in its endpoint's shape. Not an OSError:
    Django would turn that into UnreadablePostError, a 500."""


class BodyTimeout(BrokenBody):
    """The request body did not arrive at the minimum pace (the message says "timed out")."""


class DeadlineBody:
    """A request body (wsgi.input) that must arrive at GRACE seconds plus one second per MIN_RATE
    bytes. Under gunicorn the socket's own timeout is set to what is left before each read, so
    that a client that sends nothing cannot block a read past the deadline."""

    def __init__(self, stream, sock, length, grace=GRACE, min_rate=MIN_RATE):
        self.stream, self.sock, self.length = stream, sock, length
        self.grace, self.min_rate = grace, min_rate
        self.started = time.monotonic()
        self.received = 0
        self.failure = None

    def read(self, size=-1):
        return self._call(self.stream.read, size)

    def readline(self, size=-1):
        return self._call(self.stream.readline, size)

    def __iter__(self):
        while line := self.readline():
            yield line

    def _call(self, method, size):
        if self.failure is not None:
            raise self.failure
        wanted = size if size is not None and size >= 0 else (self.length or 0) - self.received
        if self.length is not None:
            wanted = min(max(wanted, 0), self.length - self.received)
        left = self.started + self.grace + (self.received + max(wanted, 0)) / self.min_rate - time.monotonic()
        try:
            if left <= 0:
                raise BodyTimeout("timed out")
            if self.sock is not None:
                self.sock.settimeout(left)
            try:
                data = method(size) if size is not None else method()
            finally:
                if self.sock is not None:
                    self.sock.settimeout(None)  # gunicorn's own blocking mode, for the answer
        except TimeoutError:
            self.failure = BodyTimeout(
                f"The request body did not arrive in time: {self.received:,} bytes in "
                f"{time.monotonic() - self.started:.1f} s (timed out).")
            raise self.failure from None
        except Exception as exc:  # noqa: BLE001 — the client broke off, or sent what cannot be de-chunked
            self.failure = BrokenBody(f"The request body could not be read to its end ({type(exc).__name__}).")
            raise self.failure from exc
        self.received += len(data)
        if not data and wanted > 0 and self.length is not None and self.received < self.length:
            self.failure = BrokenBody(f"The request body ended after {self.received:,} of the {self.length:,} "
                                      "bytes its Content-Length announced.")
            raise self.failure
        return data


class BodyDeadline:
    """WSGI middleware: request bodies read through DeadlineBody. A request whose body failed
    gets its connection closed after the answer; if the application answered it with a server error (a page
    whose form could not be read), the answer becomes 408 (timeout) or 400 (broken body)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        stream = environ.get("wsgi.input")
        if stream is None or environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS", "DELETE", "TRACE"):
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0) if environ.get("CONTENT_LENGTH") else None
        except ValueError:
            length = None
        body = DeadlineBody(stream, environ.get("gunicorn.socket"), length)
        environ["wsgi.input"] = body
        answer = []

        def capture(status, headers, exc_info=None):
            answer[:] = [status, headers, exc_info]
            return lambda data: None  # Django never writes through this

        result = self.app(environ, capture)
        if not answer:  # an application that starts its answer lazily: not ours to change
            return result
        status, headers, exc_info = answer
        if body.failure is None:
            start_response(status, headers, exc_info)
            return result
        log.warning("Request body failed (%s %s from %s): %s", environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"), environ.get("REMOTE_ADDR"), body.failure)
        sock = environ.get("gunicorn.socket")
        if not status.startswith("5"):
            start_response(status, headers, exc_info)
            return _ThenHangUp(result, sock)
        if hasattr(result, "close"):
            result.close()
        timed_out = isinstance(body.failure, BodyTimeout)
        message = (b"The request body did not arrive in time.\n" if timed_out
                   else b"The request body could not be read to its end.\n")
        start_response("408 Request Timeout" if timed_out else "400 Bad Request",
                       [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(message)))])
        return _ThenHangUp([message], sock)


class _ThenHangUp:
    """The answer, after which the server reads nothing more from the client: gunicorn would
    otherwise wait for the rest of the body to keep the connection alive."""

    def __init__(self, result, sock):
        self.result, self.sock = result, sock

    def __iter__(self):
        return iter(self.result)

    def close(self):
        try:
            if hasattr(self.result, "close"):
                self.result.close()
        finally:
            if self.sock is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
