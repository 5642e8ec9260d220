"""What a protocol's outbound client works with: the requests it makes, the answers it gets,
and the outcome of an attempt. A client (integrations/protocols/<protocol>/client.py) says
which exchanges to make and what the vendor's answers mean; the engine (dispatch.py,
exchange.py) makes the calls, logs them and decides when to try again."""

import json
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from django.utils import timezone


class NotConfigured(Exception):
    """The integration cannot send: no client for its protocol, or no vendor credentials. Not retried."""


@dataclass
class Body:
    """A request body streamed from storage: opened for each send (a retry or a 307 sends it again)."""

    open: callable  # () -> a binary file object
    size: int
    sha256: str = ""


@dataclass
class OutboundRequest:
    method: str
    url: str
    headers: dict
    body: bytes | Body = b""
    # Sent in the clear to this one host only: a credential header is dropped on a redirect elsewhere.
    redirects_keep_credentials: bool = False


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

    def json(self):
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError:
            return None


@dataclass
class Outcome:
    """What an attempt came to.

    delivered: done. retryable: a passing failure, tried again with backoff (at most the
    integration's max_attempts failures). check_later: the vendor accepted and is working on
    it; the engine looks again after `retry_after` seconds, and that is not a failure.
    Otherwise the send failed for good. `progress` is kept on the dispatch for the next attempt.
    """

    delivered: bool
    retryable: bool = False
    message: str = ""
    errors: list = field(default_factory=list)
    retry_after: float | None = None
    check_later: bool = False
    progress: dict | None = None


def error(error_id, description, row=None, column=None):
    return {"id": str(error_id), "description": str(description), "row": row, "column": column}


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


def answer_errors(answer):
    """The vendor's errors: {"errors": [{"id", "description"}]}, a bare list of them, DRF's
    {"detail"} or {"message"}; otherwise the status and the start of the body."""
    data = answer.json()
    items = data.get("errors", data.get("detail", data.get("message"))) if isinstance(data, dict) else data
    if isinstance(items, (str, dict)):
        items = [items]
    found = []
    if isinstance(items, list):
        for item in items[:100]:
            if isinstance(item, dict):
                found.append(error(item.get("id") or item.get("code") or f"http_{answer.status_code}",
                                   item.get("description") or item.get("detail") or item.get("message") or item,
                                   item.get("row"), item.get("column")))
            else:
                found.append(error(f"http_{answer.status_code}", item))
    if not found:
        found.append(error(f"http_{answer.status_code}", answer.text[:500] or "The vendor gave no details."))
    return found


def failure(answer, refused="The vendor refused the file"):
    """What a non-delivered answer means: 429 and 5xx are passing, anything else is not."""
    if answer.status_code == 429 or answer.status_code >= 500:
        return Outcome(False, retryable=True, message=f"The vendor answered {answer.status_code}.",
                       errors=answer_errors(answer), retry_after=parse_retry_after(answer.headers.get("Retry-After")))
    return Outcome(False, message=f"{refused} ({answer.status_code}).", errors=answer_errors(answer))


class OutboundClient:
    """A protocol's client. The simple case: one request, delivered on one of delivered_statuses.
    A protocol that needs several exchanges (a token, then the upload, then polling) overrides
    send(); each `http.exchange()` is logged as it happens."""

    delivered_statuses = {200, 201, 202}

    def __init__(self, integration, credentials):
        self.integration = integration
        self.credentials = credentials

    def secrets(self):
        """Every string among the vendor credentials: none of them is ever stored or logged."""
        return [value for value in self.credentials.values() if isinstance(value, str)]

    def require(self, name, label):
        value = self.credentials.get(name)
        if not value:
            raise NotConfigured(f"No {label} is stored for this integration; add it on its Settings tab.")
        return value

    def prepare(self, upload, body) -> OutboundRequest:
        """The request for a file (body: a Body streamed from storage)."""
        raise NotImplementedError

    def dry_run(self, upload, body):
        """Sandbox Mode: the requests that would be made first, exactly (they are logged, not sent)."""
        return [self.prepare(upload, body)]

    def send(self, http, upload, body, progress) -> Outcome:
        answer = http.exchange(self.prepare(upload, body))
        return self.interpret(answer)

    def interpret(self, answer) -> Outcome:
        if answer.status_code in self.delivered_statuses:
            return Outcome(True, message=f"Delivered: the vendor answered {answer.status_code}.")
        return failure(answer)
