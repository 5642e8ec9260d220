"""The delivery engine's rules: redaction of every call-log row, Retry-After, backoff, and
reading a vendor's errors. (Which destinations may be called: test_destination_guard.py.)"""

from datetime import datetime, timedelta, timezone

from uploads.delivery.client import VendorAnswer, answer_errors, parse_retry_after
from uploads.delivery.dispatch import retry_delay
from uploads.delivery.redaction import REDACTED, Redactor


def test_redaction_of_headers_urls_and_known_secrets():
    redact = Redactor(["s3cr3t-token/+x", "short"])
    assert redact.headers({"Authorization": "Token anything", "Auth-Api-Token": "a", "X-API-KEY": "b",
                           "Content-Type": "text/csv", "X-Echo": "was s3cr3t-token/+x"}) == {
        "Authorization": REDACTED, "Auth-Api-Token": REDACTED, "X-API-KEY": REDACTED,
        "Content-Type": "text/csv", "X-Echo": f"was {REDACTED}"}
    url = redact.url("https://user:pw@vendor.example.com/up?X-Amz-Signature=abc&a=1&b=s3cr3t-token%2F%2Bx")
    assert url == f"https://{REDACTED}@vendor.example.com/up?X-Amz-Signature={REDACTED}&a=1&b={REDACTED}"
    assert redact.text("body s3cr3t-token/+x and short") == f"body {REDACTED} and {REDACTED}"


def test_retry_after_in_seconds_or_as_an_http_date():
    now = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("Mon, 23 Nov 2026 09:02:00 GMT", now) == 120
    assert parse_retry_after("Mon, 23 Nov 2026 08:00:00 GMT", now) == 0  # in the past: now
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_grows_with_jitter_and_never_undercuts_retry_after(settings):
    settings.PORTAL_OUTBOUND_BACKOFF_SECONDS = 10
    delays = [retry_delay(n) for n in (1, 2, 3, 4)]
    for n, delay in enumerate(delays):
        assert 0.8 * 10 * 2 ** n <= delay <= 1.2 * 10 * 2 ** n
    assert len({retry_delay(1) for _ in range(20)}) > 1  # jitter
    assert retry_delay(1, retry_after=300) == 300
    assert retry_delay(1, retry_after=10 ** 9) == timedelta(days=1).total_seconds()


def test_vendor_errors_in_every_shape_seed_000_vendors_send():
    def answer(body, status=400):
        return VendorAnswer(status, {}, body.encode())

    assert answer_errors(answer('{"errors": [{"id": "import_parse_csv", "description": "bad"}]}')) == [
        {"id": "import_parse_csv", "description": "bad", "row": None, "column": None}]
    assert answer_errors(answer('[{"id": "import_parse_json", "description": "x", "row": 8}]'))[0]["row"] == 8
    assert answer_errors(answer('{"detail": "Invalid token."}', 401))[0] == {
        "id": "http_401", "description": "Invalid token.", "row": None, "column": None}
    assert answer_errors(answer("<html>Bad Gateway</html>", 502))[0]["description"] == "<html>Bad Gateway</html>"


def test_an_error_quoting_the_url_is_redacted_like_the_url():
    redact = Redactor([])
    url = "https://vendor.example.com/up?signature=abc123&a=1"
    text = redact.error(ConnectionError("Max retries exceeded with url: /up?signature=abc123&a=1"), url)
    assert "abc123" not in text and f"signature={REDACTED}" in text
