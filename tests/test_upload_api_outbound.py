"""Reference 002, the Upload API, outbound: the portal calls a vendor's Upload API.

Against a vendor played by pytest-httpserver on loopback for each path (polling, feedback,
refusals, retries, caching, dry runs), attempts made one by one as the engine's task would;
and end to end against the portal's own endpoints on a live server, tasks run eagerly.
"""

import base64
import json
import socket
from urllib.parse import parse_qs, quote

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from werkzeug import Response

from integrations import services, vault
from integrations.protocols.upload_api.client import UploadApiVendorClient
from integrations.protocols.upload_api.credentials import issue_client_secret
from integrations.protocols.upload_api.models import Dataset, Submission, TimeRecord
from uploads.delivery.dispatch import resend, run_attempt
from uploads.errors import IntakeError
from uploads.intake import receive
from uploads.models import CallLog, Dispatch, Upload

VENDOR = {"client_id": "vendor-client-1", "client_secret": "s3cr+t/with=and%", "api_key": "vendor-api-key-7f3a"}
ACCESS_TOKEN = "vendor-access-token-0d9e5b"
CSV = (b"Reference,StartDate,StartTime,EndDate,EndTime\n"
       b"jason@yourcompany.com,12/05/2024,09:00,12/05/2024,17:00\n"
       b"EMP-7,13/05/2024,8:30,13/05/2024,12:00\n")
DATA = ("Reference,StartDate,StartTime,EndDate,EndTime\r\n"
        "jason@yourcompany.com,12/05/2024,09:00,12/05/2024,17:00\r\n"
        "EMP-7,13/05/2024,8:30,13/05/2024,12:00")


@pytest.fixture(autouse=True)
def loopback_vendors(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


def outbound(tenant, owner, base_url, token_url, **settings):
    integration = services.create_integration(
        tenant, owner, name="Hours to the vendor", direction="outbound", protocol="upload_api",
        endpoint_url=base_url, token_url=token_url, credentials=VENDOR, **settings)
    services.set_sandbox(integration, owner, False)
    # An earlier test's integration may have had this id (rolled back), and cached a token for it.
    cache.delete(UploadApiVendorClient(integration, VENDOR).cache_key())
    return integration


class Vendor:
    """A vendor's Upload API: each endpoint answers with the next of its answers (the last one
    repeats), and everything that came is kept."""

    def __init__(self, httpserver, token=(200,), upload=(200,), statuses=("completedsuccessfully",),
                 feedback=(), expires_in=3600):
        self.answers = {"token": list(token), "upload": list(upload), "status": list(statuses)}
        self.feedback, self.expires_in = list(feedback), expires_in
        self.received = {"token": [], "upload": [], "results": []}
        httpserver.expect_request("/oauth/token", method="POST").respond_with_handler(self.token)
        httpserver.expect_request("/api/UploadData", method="POST").respond_with_handler(self.upload)
        httpserver.expect_request("/api/GetResults", method="GET").respond_with_handler(self.results)

    def next(self, name):
        answers = self.answers[name]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def token(self, request):
        self.received["token"].append({"headers": dict(request.headers), "body": request.get_data(as_text=True)})
        status = self.next("token")
        if status != 200:
            return Response(json.dumps({"error": "invalid_client"}), status=status, content_type="application/json")
        return Response(json.dumps({"access_token": f"{ACCESS_TOKEN}-{len(self.received['token'])}",
                                    "token_type": "Bearer", "expires_in": self.expires_in,
                                    "scope": "platform_upload_api"}), content_type="application/json")

    def upload(self, request):
        self.received["upload"].append({"headers": dict(request.headers), "body": json.loads(request.data)})
        status = self.next("upload")
        if status != 200:
            return Response(json.dumps({"errors": [{"id": "busy", "field": None, "description": "later"}]}),
                            status=status, headers={"Retry-After": "7"}, content_type="application/json")
        return Response(json.dumps("0f4c7a52-9c1e-4a7e-8d61-3b2f7f1c2d9a"), content_type="application/json")

    def results(self, request):
        query = {name: values[0] for name, values in parse_qs(request.query_string.decode()).items()}
        self.received["results"].append({"headers": dict(request.headers), "query": query})
        if query["dataKey"] == "status":
            return Response(json.dumps(self.next("status")), content_type="application/json")
        if query["dataKey"] == "feedback":
            return Response(json.dumps(self.feedback), content_type="application/json")
        ids = [{"dataset": "Data", "row": 1, "id": 101}, {"dataset": "Data", "row": 2, "id": 102}]
        return Response(json.dumps(ids), content_type="application/json")


@pytest.fixture
def vendor_integration(tenant, owner, httpserver):
    return outbound(tenant, owner, httpserver.url_for("/api"), httpserver.url_for("/oauth/token"))


def send(integration, body=CSV):
    """Send a file through the intake, then make the dispatch's attempts as the engine's task would,
    each one when the one before says; returns the upload and the delays between attempts."""
    upload = receive(integration, body, channel="web", content_type="text/csv", filename="hours.csv")
    return attempts(upload)


def attempts(upload, dispatch=None):
    dispatch = dispatch or Dispatch.objects.filter(upload=upload).latest("id")
    attempt, delays = dispatch.attempts + 1, []
    while (delay := run_attempt(dispatch.pk, attempt)) is not None:
        delays.append(delay)
        attempt += 1
    upload.refresh_from_db()
    return upload, delays


def stored_everywhere(upload):
    """Everything the portal keeps of an outbound send: call log, the upload's errors and message."""
    return (json.dumps(list(CallLog.objects.values()), default=str) + json.dumps(upload.errors) + upload.message
            + json.dumps(list(Dispatch.objects.values("progress")), default=str))


# --- The vendor's Upload API, path by path ---------------------------------------------------------


@pytest.mark.django_db
def test_a_file_goes_token_upload_data_then_status_polled_until_done_then_result_ids(vendor_integration, httpserver):
    vendor = Vendor(httpserver, statuses=("queued", "processing", "completedsuccessfully"))

    upload, delays = send(vendor_integration)

    assert upload.status == "delivered", upload.message
    assert delays == [2, 4]  # "check again later", by Celery countdown: no worker waited
    assert "0f4c7a52-9c1e-4a7e-8d61-3b2f7f1c2d9a" in upload.message and "2 result ids" in upload.message
    token_request = vendor.received["token"]
    assert len(token_request) == 1  # cached for the later attempts
    expected = base64.b64encode(f"vendor-client-1:{quote(VENDOR['client_secret'], safe='')}".encode()).decode()
    assert token_request[0]["headers"]["Authorization"] == f"Basic {expected}"
    assert token_request[0]["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request[0]["body"]) == {"grant_type": ["client_credentials"],
                                                  "scope": ["platform_upload_api"]}
    [sent] = vendor.received["upload"]
    assert sent["headers"]["Authorization"] == f"Bearer {ACCESS_TOKEN}-1"
    assert sent["body"] == {"Name": f"portal-{vendor_integration.pk}-{upload.pk}", "Data": DATA,
                            "Username": "vendor-client-1", "Key": VENDOR["api_key"], "Overwrite": False}
    assert [(r["query"]["dataKey"], r["query"]["token"], r["query"]["key"]) for r in vendor.received["results"]] == [
        ("status", "0f4c7a52-9c1e-4a7e-8d61-3b2f7f1c2d9a", VENDOR["api_key"])] * 3 + [
        ("tableofresultids", "0f4c7a52-9c1e-4a7e-8d61-3b2f7f1c2d9a", VENDOR["api_key"])]
    calls = CallLog.objects.filter(upload=upload).order_by("id")
    assert [(c.attempt, c.method, c.url.split("?")[0].rsplit("/", 1)[1], c.status_code) for c in calls] == [
        (1, "POST", "token", 200), (1, "POST", "UploadData", 200), (1, "GET", "GetResults", 200),
        (2, "GET", "GetResults", 200), (3, "GET", "GetResults", 200), (3, "GET", "GetResults", 200)]
    assert '"access_token": "[redacted]"' in calls[0].response_excerpt
    assert all(c.request_headers["Authorization"] == "[redacted]" for c in calls)
    everything = stored_everywhere(upload)
    for secret in (ACCESS_TOKEN, VENDOR["client_secret"], VENDOR["api_key"], quote(VENDOR["client_secret"])):
        assert secret not in everything


@pytest.mark.django_db
def test_the_vendors_feedback_becomes_the_uploads_errors(vendor_integration, httpserver):
    Vendor(httpserver, statuses=("completedwitherrors",), feedback=[
        {"dataset": "Data", "row": 2, "column": "StartTime", "message": "outside working hours"},
        {"dataset": "EventData", "row": 1, "column": "Description", "message": "required"}])

    upload, delays = send(vendor_integration)

    assert upload.status == "not_delivered" and delays == []
    assert "completedwitherrors" in upload.message and "2 problems" in upload.message
    assert upload.errors == [
        {"id": "vendor_feedback", "description": "outside working hours", "row": 2, "column": "StartTime"},
        {"id": "vendor_feedback", "description": "required", "row": 1, "column": "EventData.Description"}]


@pytest.mark.django_db
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_client_fails_for_good_with_words_an_admin_can_act_on(vendor_integration, httpserver, status):
    vendor = Vendor(httpserver, token=(status,))

    upload, delays = send(vendor_integration)

    assert upload.status == "not_delivered" and delays == []
    assert "refused the client id and secret" in upload.message and "Settings tab" in upload.message
    assert upload.errors[0]["id"] == "vendor_token_refused"
    assert len(vendor.received["token"]) == 1 and vendor.received["upload"] == []


@pytest.mark.django_db
def test_5xx_from_the_token_endpoint_and_429_from_upload_data_are_retried(vendor_integration, httpserver):
    vendor = Vendor(httpserver, token=(503, 200), upload=(429, 200))

    upload, delays = send(vendor_integration)

    assert upload.status == "delivered", upload.message
    assert len(delays) == 2 and delays[1] >= 7  # never sooner than the vendor's Retry-After
    calls = list(CallLog.objects.filter(upload=upload).order_by("id").values_list("attempt", "status_code"))
    assert calls[:4] == [(1, 503), (2, 200), (2, 429), (3, 200)]
    # A retried UploadData may find its Name taken by the attempt the vendor half-took: Overwrite.
    assert [sent["body"]["Overwrite"] for sent in vendor.received["upload"]] == [True, True]
    assert len({sent["body"]["Name"] for sent in vendor.received["upload"]}) == 1


@pytest.mark.django_db
def test_an_unreachable_vendor_is_retried(tenant, owner):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    integration = outbound(tenant, owner, f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}/oauth/token")
    upload = receive(integration, CSV, channel="web", content_type="text/csv")
    dispatch = Dispatch.objects.get(upload=upload)

    delay = run_attempt(dispatch.pk, 1)

    upload.refresh_from_db()
    assert delay is not None and upload.status == "sending"
    assert "could not be reached" in upload.message
    assert CallLog.objects.get(upload=upload).error_class == "ConnectionError"


@pytest.mark.django_db
def test_a_token_the_vendor_no_longer_takes_is_replaced_once(vendor_integration, httpserver):
    vendor = Vendor(httpserver, upload=(401, 200))

    upload, _ = send(vendor_integration)

    assert upload.status == "delivered", upload.message
    assert len(vendor.received["token"]) == 2
    assert [sent["headers"]["Authorization"] for sent in vendor.received["upload"]] == [
        f"Bearer {ACCESS_TOKEN}-1", f"Bearer {ACCESS_TOKEN}-2"]


@pytest.mark.django_db
@pytest.mark.parametrize("expires_in, token_requests", [(3600, 1), (45, 2)])
def test_the_token_is_cached_per_integration_until_shortly_before_it_expires(
        vendor_integration, httpserver, expires_in, token_requests):
    vendor = Vendor(httpserver, expires_in=expires_in)

    first, _ = send(vendor_integration)
    second, _ = send(vendor_integration)

    assert first.status == second.status == "delivered"
    assert len(vendor.received["token"]) == token_requests
    if token_requests == 1:
        client = UploadApiVendorClient(vendor_integration, VENDOR)
        cached = cache.get(client.cache_key())
        assert ACCESS_TOKEN not in cached and vault.decrypt(cached) == {"access_token": f"{ACCESS_TOKEN}-1"}


@pytest.mark.django_db
def test_in_sandbox_mode_the_exact_requests_are_logged_and_nothing_is_sent(vendor_integration, httpserver, owner):
    vendor = Vendor(httpserver)
    services.set_sandbox(vendor_integration, owner, True)

    upload = receive(vendor_integration, CSV, channel="web", content_type="text/csv")

    assert upload.status == "dry_run"
    assert vendor.received == {"token": [], "upload": [], "results": []}
    token, upload_data, status = CallLog.objects.filter(upload=upload).order_by("id")
    assert all(call.dry_run for call in (token, upload_data, status))
    assert token.request_headers["Authorization"] == "[redacted]"
    assert token.request_body_excerpt == "grant_type=client_credentials&scope=platform_upload_api"
    body = json.loads(upload_data.request_body_excerpt)
    assert body == {"Name": f"portal-{vendor_integration.pk}-{upload.pk}", "Data": DATA,
                    "Username": "vendor-client-1", "Key": "[redacted]", "Overwrite": False}
    assert "key=[redacted]" in status.url and "dataKey=status" in status.url
    assert VENDOR["api_key"] not in stored_everywhere(upload)


@pytest.mark.django_db
def test_a_resend_keeps_the_name_and_overwrites(vendor_integration, httpserver, owner):
    vendor = Vendor(httpserver)
    upload, _ = send(vendor_integration)

    again, _ = attempts(resend(upload, owner))

    assert again.status == "delivered"
    assert [(s["body"]["Name"], s["body"]["Overwrite"]) for s in vendor.received["upload"]] == [
        (f"portal-{vendor_integration.pk}-{upload.pk}", False), (f"portal-{vendor_integration.pk}-{upload.pk}", True)]


@pytest.mark.django_db
def test_a_name_without_the_upload_is_one_submission_each_upload_overwrites(tenant, owner, httpserver):
    integration = outbound(tenant, owner, httpserver.url_for("/api"), httpserver.url_for("/oauth/token"),
                           submission_name="Timesheet of integration {integration}")
    vendor = Vendor(httpserver)

    send(integration)

    assert vendor.received["upload"][0]["body"]["Name"] == f"Timesheet of integration {integration.pk}"
    assert vendor.received["upload"][0]["body"]["Overwrite"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("body, row, column", [
    (b"jason@yourcompany.com,2024-05-12,09:00,12/05/2024,17:00\n", 1, "StartDate"),
    (b"Reference,StartDate\nx,12/05/2024\n", None, "StartTime"),
    (b"a,12/05/2024,09:00,12/05/2024,17:00\nb,12/05/2024,09:00,11/05/2024,17:00\n", 2, "EndDate"),
])
def test_a_file_the_vendor_would_refuse_is_refused_before_anything_is_sent(vendor_integration, httpserver, body, row,
                                                                           column):
    vendor = Vendor(httpserver)

    with pytest.raises(IntakeError) as refused:
        receive(vendor_integration, body, channel="web", content_type="text/csv")

    assert (refused.value.errors[0]["row"], refused.value.errors[0]["column"]) == (row, column)
    assert not Upload.objects.exists() and vendor.received["token"] == []


@pytest.mark.django_db
def test_the_upload_api_tab_checks_the_token_url_and_the_name(tenant, owner, httpserver):
    base = httpserver.url_for("/api")
    with pytest.raises(ValidationError, match="required"):
        services.create_integration(tenant, owner, name="No token URL", direction="outbound", protocol="upload_api",
                                    endpoint_url=base, credentials=VENDOR)
    with pytest.raises(ValidationError, match="token_url"):  # the cloud's metadata address: never called
        outbound(tenant, owner, base, "http://169.254.169.254/oauth/token")
    with pytest.raises(ValidationError, match="braces"):
        outbound(tenant, owner, base, httpserver.url_for("/oauth/token"), submission_name="{tenant}-{upload}")
    defaults = outbound(tenant, owner, base, httpserver.url_for("/oauth/token"))
    assert defaults.settings == {"token_url": httpserver.url_for("/oauth/token"),
                                 "submission_name": "portal-{integration}-{upload}"}


# --- Both ways: the portal's client against the portal's own Upload API -----------------------------


@pytest.mark.django_db(transaction=True)
def test_a_file_sent_to_the_portals_own_upload_api_becomes_its_records(live_server, tenant, owner):
    inbound = services.create_integration(tenant, owner, name="Hours", protocol="upload_api")
    client_id, client_secret = issue_client_secret(inbound, owner)
    key = services.regenerate_integration_token(inbound, owner)
    integration = services.create_integration(
        tenant, owner, name="Hours to ourselves", direction="outbound", protocol="upload_api",
        endpoint_url=f"{live_server.url}/api/upload-api", token_url=f"{live_server.url}/api/upload-api/token",
        credentials={"client_id": client_id, "client_secret": client_secret, "api_key": key})
    services.set_sandbox(integration, owner, False)

    sent = receive(integration, CSV, channel="web", content_type="text/csv")  # tasks run eagerly on commit

    sent.refresh_from_db()
    assert sent.status == "delivered", sent.message
    calls = CallLog.objects.filter(upload=sent).order_by("id")
    assert [(c.method, c.url.split("?")[0].rsplit("/", 1)[1], c.status_code) for c in calls] == [
        ("POST", "token", 200), ("POST", "UploadData", 200), ("GET", "GetResults", 200), ("GET", "GetResults", 200)]
    submission = Submission.objects.get(integration=inbound)
    assert submission.token in sent.message and "2 result ids" in sent.message
    assert submission.name == f"portal-{integration.pk}-{sent.pk}"
    assert submission.upload.channel == "upload_data" and submission.upload.status == "processed"
    assert [(r.row, r.reference) for r in TimeRecord.objects.order_by("row")] == [
        (1, "jason@yourcompany.com"), (2, "EMP-7")]
    access_token = vault.decrypt(cache.get(UploadApiVendorClient(integration, {
        "client_id": client_id, "client_secret": client_secret}).cache_key()))["access_token"]
    for secret in (access_token, client_secret, key):
        assert secret not in stored_everywhere(sent)

    again, _ = attempts(resend(sent, owner))  # the first attempt ran eagerly on commit already

    again.refresh_from_db()
    assert again.status == "delivered", again.message
    assert Submission.objects.filter(integration=inbound).count() == 2
    assert TimeRecord.objects.count() == 2  # replaced, not added: the resend overwrote its Name
    assert Dataset.objects.get(integration=inbound).live.upload.status == "processed"


@pytest.mark.django_db(transaction=True)
def test_the_portals_own_feedback_comes_back_as_the_outbound_uploads_errors(live_server, tenant, owner):
    inbound = services.create_integration(tenant, owner, name="Hours", protocol="upload_api",
                                          unknown_email="reject")
    client_id, client_secret = issue_client_secret(inbound, owner)
    key = services.regenerate_integration_token(inbound, owner)
    integration = services.create_integration(
        tenant, owner, name="Hours to ourselves", direction="outbound", protocol="upload_api",
        endpoint_url=f"{live_server.url}/api/upload-api", token_url=f"{live_server.url}/api/upload-api/token",
        credentials={"client_id": client_id, "client_secret": client_secret, "api_key": key})
    services.set_sandbox(integration, owner, False)

    sent = receive(integration, CSV, channel="web", content_type="text/csv")

    sent.refresh_from_db()
    assert sent.status == "not_delivered", sent.message
    assert "completedwitherrors" in sent.message
    assert sent.errors == [{"id": "vendor_feedback", "row": 1, "column": "Reference",
                            "description": "No account in this organisation has the email jason@yourcompany.com."}]
    assert not TimeRecord.objects.exists()
