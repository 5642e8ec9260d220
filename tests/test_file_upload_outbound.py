"""Reference 003 outbound: the portal asks a vendor's File Upload API for a URL (step 1) and
streams the file there with PUT (step 2). Against pytest-httpserver as the vendor, and end to
end against the portal's own File Upload API (the live server) with a file over 15 MB."""

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from werkzeug import Response

from integrations import services
from integrations.protocols.file_upload import tokens
from uploads.intake import receive
from uploads.models import CallLog, Dispatch, Upload

pytestmark = pytest.mark.django_db

VENDOR_TOKEN = "vendor-Upload-Token-5b1e77"
SIGNATURE = "0f3c9a1be24d77aa51b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"
CSV = b"email,date,calls\njason@yourcompany.com,8/16/2016,3\n"


@pytest.fixture(autouse=True)
def _vendor_network(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 5


def outbound(tenant, owner, endpoint, token=VENDOR_TOKEN, sandbox=False):
    integration = services.create_integration(
        tenant, owner, name="Vendor files", direction="outbound", protocol="file_upload", endpoint_url=endpoint,
        credentials={"api_token": token})
    if not sandbox:
        services.set_sandbox(integration, owner, False)
    return integration


def send(client, tenant, integration, capture, body=CSV, name="customers.csv"):
    with capture(execute=True):
        response = client.post(reverse("upload_create", args=[tenant.slug]), {
            "integration": integration.pk, "file": SimpleUploadedFile(name, body, "text/csv")})
    assert response.status_code == 302, response.content
    return Upload.objects.get(integration=integration)


def presigned(httpserver, path="/bucket/customers.csv"):
    """A URL as S3 presigns it, with `&` written as JSON writes it (or as a Go vendor: \\u0026)."""
    return (httpserver.url_for(path) + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261123%2Fus"
            f"&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={SIGNATURE}")


def step_one(httpserver, url, file_id=123, status=200):
    httpserver.expect_ordered_request("/files/", method="POST").respond_with_response(Response(
        json.dumps({"id": file_id, "url": url}).replace("&", "\\u0026"), status=status,
        content_type="application/json"))


def received(httpserver, method):
    return [request for request, _ in httpserver.log if request.method == method]


def test_step_one_then_a_streamed_put(owner_client, tenant, owner, httpserver, django_capture_on_commit_callbacks):
    step_one(httpserver, presigned(httpserver))
    httpserver.expect_ordered_request("/bucket/customers.csv", method="PUT").respond_with_data("", status=200)
    integration = outbound(tenant, owner, httpserver.url_for("/files/"))
    upload = send(owner_client, tenant, integration, django_capture_on_commit_callbacks)
    assert upload.status == Upload.Status.DELIVERED, upload.message
    assert upload.message.startswith("Delivered as file 123: the PUT was answered 200")
    [post], [put] = received(httpserver, "POST"), received(httpserver, "PUT")
    assert post.headers["Auth-Api-Token"] == VENDOR_TOKEN and json.loads(post.data) == {"filename": "customers.csv"}
    # The PUT: the file, its length, no token (another host), no Content-Type, the URL's & intact.
    assert put.data == CSV and put.headers["Content-Length"] == str(len(CSV))
    assert "Auth-Api-Token" not in put.headers and "Content-Type" not in put.headers
    assert put.args["X-Amz-Signature"] == SIGNATURE and put.args["X-Amz-Credential"] == "AKIA/20261123/us"
    # Both exchanges in the call log, the signature and the token redacted everywhere.
    first, second = CallLog.objects.filter(upload=upload).order_by("id")
    assert (first.method, first.status_code, second.method, second.status_code) == ("POST", 200, "PUT", 200)
    assert first.request_headers["Auth-Api-Token"] == "[redacted]" and "Auth-Api-Token" not in second.request_headers
    assert "X-Amz-Signature=[redacted]" in second.url and second.request_body_size == len(CSV)
    assert second.request_body_sha256 == hashlib.sha256(CSV).hexdigest()
    logged = json.dumps(list(CallLog.objects.values()), default=str)
    assert SIGNATURE not in logged and VENDOR_TOKEN not in logged and "[redacted]" in first.response_excerpt


def test_an_expired_url_gets_one_fresh_step_one(owner_client, tenant, owner, httpserver,
                                                django_capture_on_commit_callbacks):
    step_one(httpserver, presigned(httpserver, "/bucket/old.csv"), file_id=1)
    httpserver.expect_ordered_request("/bucket/old.csv", method="PUT").respond_with_data(
        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", status=403)
    step_one(httpserver, presigned(httpserver, "/bucket/new.csv"), file_id=2)
    httpserver.expect_ordered_request("/bucket/new.csv", method="PUT").respond_with_data("", status=200)
    upload = send(owner_client, tenant, outbound(tenant, owner, httpserver.url_for("/files/")),
                  django_capture_on_commit_callbacks)
    assert upload.status == Upload.Status.DELIVERED and "file 2" in upload.message
    calls = list(CallLog.objects.filter(upload=upload).order_by("id").values_list("method", "status_code", "attempt"))
    assert calls == [("POST", 200, 1), ("PUT", 403, 1), ("POST", 200, 1), ("PUT", 200, 1)]


def test_a_url_that_expires_twice_is_not_delivered(owner_client, tenant, owner, httpserver,
                                                  django_capture_on_commit_callbacks):
    for n in (1, 2):
        step_one(httpserver, presigned(httpserver, f"/bucket/{n}.csv"), file_id=n)
        httpserver.expect_ordered_request(f"/bucket/{n}.csv", method="PUT").respond_with_data("expired", status=403)
    upload = send(owner_client, tenant, outbound(tenant, owner, httpserver.url_for("/files/")),
                  django_capture_on_commit_callbacks)
    assert upload.status == Upload.Status.NOT_DELIVERED and CallLog.objects.filter(upload=upload).count() == 4


def test_401_on_step_one_fails_for_good(owner_client, tenant, owner, httpserver, django_capture_on_commit_callbacks):
    httpserver.expect_request("/files/", method="POST").respond_with_json(
        {"errors": [{"id": "authentication_failed", "description": "Invalid token."}]}, status=401)
    upload = send(owner_client, tenant, outbound(tenant, owner, httpserver.url_for("/files/")),
                  django_capture_on_commit_callbacks)
    assert upload.status == Upload.Status.NOT_DELIVERED and upload.errors[0]["id"] == "authentication_failed"
    assert CallLog.objects.filter(upload=upload).count() == 1 and not received(httpserver, "PUT")


def test_a_5xx_retries_the_whole_sequence(owner_client, tenant, owner, httpserver,
                                          django_capture_on_commit_callbacks):
    step_one(httpserver, presigned(httpserver, "/bucket/a.csv"))
    httpserver.expect_ordered_request("/bucket/a.csv", method="PUT").respond_with_data("busy", status=503)
    step_one(httpserver, presigned(httpserver, "/bucket/b.csv"))
    httpserver.expect_ordered_request("/bucket/b.csv", method="PUT").respond_with_data("", status=200)
    upload = send(owner_client, tenant, outbound(tenant, owner, httpserver.url_for("/files/")),
                  django_capture_on_commit_callbacks)
    assert upload.status == Upload.Status.DELIVERED
    calls = list(CallLog.objects.filter(upload=upload).order_by("id").values_list("method", "status_code", "attempt"))
    assert calls == [("POST", 200, 1), ("PUT", 503, 1), ("POST", 200, 2), ("PUT", 200, 2)]


def test_the_put_host_is_checked_like_any_destination(owner_client, tenant, owner, httpserver,
                                                     django_capture_on_commit_callbacks):
    step_one(httpserver, "http://10.20.30.40/bucket/a.csv?X-Amz-Signature=" + SIGNATURE)
    upload = send(owner_client, tenant, outbound(tenant, owner, httpserver.url_for("/files/")),
                  django_capture_on_commit_callbacks)
    assert upload.status == Upload.Status.NOT_DELIVERED and upload.errors[0]["id"] == "outbound_refused"
    put = CallLog.objects.get(upload=upload, method="PUT")
    assert put.status_code is None and put.error_class == "RefusedDestination" and SIGNATURE not in put.url


def test_an_answer_without_a_url(owner_client, tenant, owner, httpserver, django_capture_on_commit_callbacks):
    httpserver.expect_request("/files/", method="POST").respond_with_json({"id": 5})
    upload = send(owner_client, tenant, outbound(tenant, owner, httpserver.url_for("/files/")),
                  django_capture_on_commit_callbacks)
    assert upload.status == Upload.Status.NOT_DELIVERED and upload.errors[0]["id"] == "no_upload_url"


def test_sandbox_mode_logs_step_one_and_sends_nothing(owner_client, tenant, owner, httpserver,
                                                     django_capture_on_commit_callbacks):
    integration = outbound(tenant, owner, httpserver.url_for("/files/"), sandbox=True)
    upload = send(owner_client, tenant, integration, django_capture_on_commit_callbacks)
    assert upload.status == Upload.Status.DRY_RUN and not httpserver.log
    call = CallLog.objects.get(upload=upload)
    assert call.dry_run and call.method == "POST" and '"filename": "customers.csv"' in call.request_body_excerpt


@pytest.mark.django_db(transaction=True)
def test_a_file_over_15_mb_to_the_portals_own_file_upload_api(live_server, tenant, owner, activity_integration,
                                                               tmp_path, caplog):
    """Both halves of reference 003 meet: the outbound client against the inbound endpoints."""
    _, inbound_token = tokens.issue(tenant, owner, "From our own outbound", activity_integration)
    integration = outbound(tenant, owner, f"{live_server.url}/api/v1/file-upload/", token=inbound_token)
    header = b"email,date,calls,talk_minutes,deals\n"
    rows = b"".join(f"user{n % 300}@example.com,8/{1 + n % 28}/2016,{n % 9},{n % 60},{n % 3}\n".encode()
                    for n in range(20_000))
    data = header + rows * 24  # about 17 MB
    assert len(data) > 15 * 1024 * 1024
    path = tmp_path / "activity.csv"
    path.write_bytes(data)
    with open(path, "rb") as file:
        sent = receive(integration, file, channel=Upload.Channel.WEB, content_type="text/csv",
                       filename="activity.csv", submitted_by=owner)
    sent.refresh_from_db()
    assert sent.status == Upload.Status.DELIVERED, (sent.message, sent.errors)
    arrived = Upload.objects.get(integration__protocol="file_upload", integration__direction="inbound")
    assert arrived.sha256 == sent.sha256 == hashlib.sha256(data).hexdigest() and arrived.size_bytes == len(data)
    assert arrived.status == Upload.Status.PROCESSED and arrived.records == 480_000, arrived.errors
    post, put = CallLog.objects.filter(upload=sent).order_by("id")
    assert put.method == "PUT" and put.status_code == 200 and "signature=[redacted]" in put.url
    assert json.loads(put.response_excerpt)["sha256"] == sent.sha256
    logged = json.dumps(list(CallLog.objects.values()), default=str)
    signature = json.loads(CallLog.objects.get(pk=post.pk).response_excerpt)["url"].rsplit("=", 1)[1]
    assert signature == "[redacted]" and inbound_token not in logged and inbound_token not in caplog.text
    assert Dispatch.objects.get(upload=sent).status == Dispatch.Status.DELIVERED
