"""The outbound safety rule and the redaction every call-log row goes through.

No network: literal IP addresses only, so nothing here depends on DNS."""

from datetime import datetime, timedelta, timezone

import pytest

from integrations.outbound import (
    REDACTED, Redactor, RefusedDestination, VendorAnswer, check_destination, parse_retry_after, retry_delay,
    vendor_errors,
)


@pytest.fixture(autouse=True)
def _no_allowed_networks(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []


@pytest.mark.parametrize("url", [
    "https://8.8.8.8/api/v1/data/calls/",
    "https://[2001:4860:4860::8888]/api/v1/data/calls/",
])
def test_https_to_a_public_address_is_allowed(url):
    check_destination(url)


@pytest.mark.parametrize("url, reason", [
    ("http://8.8.8.8/api/v1/data/calls/", "use https"),
    ("ftp://8.8.8.8/file", "Only https"),
    ("https://127.0.0.1/", "non-public"),
    ("https://10.1.2.3/", "non-public"),
    ("https://192.168.0.10/", "non-public"),
    ("https://172.16.5.4/", "non-public"),
    ("https://169.254.169.254/latest/meta-data/", "non-public"),
    ("https://100.64.0.1/", "non-public"),  # carrier-grade NAT
    ("https://0.0.0.0/", "non-public"),
    ("https://[::1]/", "non-public"),
    ("https://[fe80::1]/", "non-public"),
    ("https://[fd00::1]/", "non-public"),
    ("https://[::ffff:127.0.0.1]/", "non-public"),  # IPv4-mapped loopback
    ("https://224.0.0.1/", "non-public"),
])
def test_refused_destinations(url, reason):
    with pytest.raises(RefusedDestination, match=reason):
        check_destination(url)


def test_an_allowed_network_may_be_called_even_over_plain_http(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/8", "127.0.0.0/8"]
    check_destination("http://10.1.2.3:8080/api/v1/data/calls/")
    check_destination("https://127.0.0.1/")
    with pytest.raises(RefusedDestination):
        check_destination("https://192.168.0.10/")


def test_a_dry_run_checks_without_resolving():
    check_destination("http://vendor.invalid/api/", resolve=False)  # cannot know without DNS: not refused
    with pytest.raises(RefusedDestination):
        check_destination("https://10.0.0.1/", resolve=False)


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

    assert vendor_errors(answer('{"errors": [{"id": "import_parse_csv", "description": "bad"}]}')) == [
        {"id": "import_parse_csv", "description": "bad", "row": None, "column": None}]
    assert vendor_errors(answer('[{"id": "import_parse_json", "description": "x", "row": 8}]'))[0]["row"] == 8
    assert vendor_errors(answer('{"detail": "Invalid token."}', 401))[0] == {
        "id": "http_401", "description": "Invalid token.", "row": None, "column": None}
    assert vendor_errors(answer("<html>Bad Gateway</html>", 502))[0]["description"] == "<html>Bad Gateway</html>"


def test_an_error_quoting_the_url_is_redacted_like_the_url():
    redact = Redactor([])
    url = "https://vendor.example.com/up?signature=abc123&a=1"
    text = redact.error(ConnectionError("Max retries exceeded with url: /up?signature=abc123&a=1"), url)
    assert "abc123" not in text and f"signature={REDACTED}" in text
