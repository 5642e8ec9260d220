"""Outbound: sending a file to a vendor's seed-000 endpoint, against real HTTP servers.

The vendor is pytest-httpserver on loopback, which the portal refuses to call unless
PORTAL_OUTBOUND_ALLOWED_NETWORKS allows it; the tests allow 127.0.0.0/8 except where they
check the refusal. Files go in through the upload form; the tasks run eagerly.
"""

import json
import socket
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from werkzeug import Response

from integrations import services
from integrations.models import Integration
from uploads.delivery import dispatch as outbound
from uploads.delivery import exchange
from uploads.delivery.dispatch import claim, stored_body
from uploads.intake import receive
from uploads.models import CallLog, Dispatch
from uploads.tasks import send_dispatch
from portal.db import update_together
from portal.models import AuditEvent
from uploads.delivery.client import OutboundRequest
from uploads.delivery.redaction import Redactor
from uploads.models import Upload

pytestmark = pytest.mark.django_db

VENDOR_TOKEN = "vendor-Secret-7f3c9a1be24d"
PATH = "/api/v1/data/calls/"
ROWS = [{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]
BODY = json.dumps(ROWS).encode()


@pytest.fixture(autouse=True)
def _vendor_network(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 5


@pytest.fixture
def vendor_integration(tenant, owner, httpserver):
    """An outbound seed-000 integration out of Sandbox Mode; its endpoint lacks the trailing slash
    on purpose (the client adds it)."""
    integration = services.create_integration(
        tenant, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=httpserver.url_for(PATH.rstrip("/")),
        credentials={"auth_token": VENDOR_TOKEN},
    )
    services.set_sandbox(integration, owner, False)
    return integration


def send(client, tenant, integration, capture, body=BODY, name="calls.json"):
    with capture(execute=True):
        return client.post(reverse("upload_create", args=[tenant.slug]), {
            "integration": integration.pk, "file": SimpleUploadedFile(name, body, "application/json"),
        })


def page_of(client, upload):
    return client.get(reverse("upload_detail", args=[upload.tenant.slug, upload.pk])).content.decode()


def assert_no_secret(*texts):
    """The vendor's token appears in no call-log row, upload, page or log line."""
    stored = [json.dumps(list(CallLog.objects.values()), default=str),
              json.dumps(list(Upload.objects.values("errors", "message")), default=str),
              json.dumps(list(AuditEvent.objects.values("detail", "target")), default=str)]
    for text in stored + list(texts):
        assert VENDOR_TOKEN not in text


def test_201_is_delivered_with_token_content_type_and_trailing_slash(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, caplog):
    httpserver.expect_request(PATH, method="POST", headers={"Authorization": f"Token {VENDOR_TOKEN}",
                                                             "Content-Type": "application/json"}
                              ).respond_with_json({"id": 77}, status=201)
    response = send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    assert response.status_code == 302 and response["Location"] == upload.get_absolute_url()
    assert upload.status == Upload.Status.DELIVERED and upload.records == 1
    assert upload.started_at <= upload.finished_at
    (request, _), = httpserver.log
    assert request.get_data() == BODY
    call = CallLog.objects.get(upload=upload)
    assert (call.attempt, call.method, call.status_code, call.dry_run) == (1, "POST", 201, False)
    assert call.url == httpserver.url_for(PATH)  # slash added
    assert call.request_headers["Authorization"] == "[redacted]"
    assert call.request_body_size == len(BODY) and len(call.request_body_sha256) == 64
    assert call.response_excerpt == '{"id": 77}\n' or json.loads(call.response_excerpt) == {"id": 77}
    assert call.response_headers["Content-Type"] == "application/json"
    page = page_of(owner_client, upload)
    assert "Delivered" in page and "<details" in page and "[redacted]" in page
    assert_no_secret(page, caplog.text)


def test_vendor_400_fails_at_once_and_its_error_ids_are_shown(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, caplog):
    httpserver.expect_request(PATH, method="POST").respond_with_json({"errors": [
        {"id": "import_transform_data", "description": "The request body does not match the DATA_FORMAT."},
        {"id": "import_parse_json", "description": f"Bad token echo {VENDOR_TOKEN}"},
    ]}, status=400)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    assert upload.status == Upload.Status.NOT_DELIVERED
    assert len(httpserver.log) == 1  # a 4xx is not retried
    assert [e["id"] for e in upload.errors] == ["import_transform_data", "import_parse_json"]
    assert upload.errors[1]["description"] == "Bad token echo [redacted]"
    page = page_of(owner_client, upload)
    assert "import_transform_data" in page and "does not match the DATA_FORMAT" in page
    assert "Not delivered" in page
    assert_no_secret(page, caplog.text)


def test_500_then_201_is_retried_with_backoff(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, settings):
    settings.PORTAL_OUTBOUND_BACKOFF_SECONDS = 10
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data("oops", status=500)
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data("", status=201)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    assert upload.status == Upload.Status.DELIVERED
    first, second = CallLog.objects.filter(upload=upload)
    assert (first.attempt, first.status_code, second.attempt, second.status_code) == (1, 500, 2, 201)
    assert 8 <= first.retry_in_seconds <= 12  # 10 s ± 20 % jitter
    assert second.retry_in_seconds is None
    assert "attempt 2" in upload.message


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_429_honours_retry_after(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, settings, as_date):
    settings.PORTAL_OUTBOUND_BACKOFF_SECONDS = 1
    retry_after = format_datetime(timezone.now() + timezone.timedelta(seconds=121), usegmt=True) if as_date else "120"
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data(
        "Too Many Requests", status=429, headers={"Retry-After": retry_after})
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data("", status=201)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    throttled, delivered = CallLog.objects.filter(upload=upload)
    assert throttled.status_code == 429 and throttled.response_headers["Retry-After"] == retry_after
    # delay = max(backoff (about 1 s), Retry-After): the vendor's 120 s win.
    assert 119 <= throttled.retry_in_seconds <= 122
    assert delivered.status_code == 201 and upload.status == Upload.Status.DELIVERED


def test_a_timeout_is_retried_up_to_max_attempts(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, settings):
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 0.3
    vendor_integration.max_attempts = 2
    vendor_integration.save()

    def slow(request):
        time.sleep(0.8)
        return Response("late", status=201)

    httpserver.expect_request(PATH, method="POST").respond_with_handler(slow)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    calls = list(CallLog.objects.filter(upload=upload))
    assert [c.attempt for c in calls] == [1, 2]
    assert all(c.error_class == "ReadTimeout" and c.status_code is None for c in calls)
    assert all(250 <= c.duration_ms < 800 for c in calls)
    assert upload.status == Upload.Status.NOT_DELIVERED
    assert "after 2 attempts" in upload.message and upload.errors[0]["id"] == "outbound_unreachable"
    assert Dispatch.objects.get(upload=upload).status == Dispatch.Status.FAILED
    deadline = time.monotonic() + 5  # let the slow server finish, so that the next test starts clean
    while len(httpserver.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_connection_refused_is_retried_then_fails(owner_client, tenant, owner, django_capture_on_commit_callbacks):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    integration = services.create_integration(
        tenant, owner, name="Gone", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=f"http://127.0.0.1:{port}/api/v1/data/calls/",
        credentials={"auth_token": VENDOR_TOKEN}, max_attempts=3,
    )
    services.set_sandbox(integration, owner, False)
    send(owner_client, tenant, integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=integration)
    calls = list(CallLog.objects.filter(upload=upload))
    assert [(c.attempt, c.error_class) for c in calls] == [(1, "ConnectionError"), (2, "ConnectionError"),
                                                           (3, "ConnectionError")]
    assert calls[0].retry_in_seconds and calls[1].retry_in_seconds and calls[2].retry_in_seconds is None
    assert upload.status == Upload.Status.NOT_DELIVERED and "after 3 attempts" in upload.message
    page = page_of(owner_client, upload)
    assert "ConnectionError" in page
    assert_no_secret(page)


def test_a_redirect_to_a_refused_host_is_not_followed(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, caplog):
    metadata = "http://169.254.169.254/latest/meta-data/"
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=307, headers={"Location": metadata})
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    redirect, refused = CallLog.objects.filter(upload=upload)
    assert redirect.status_code == 307 and redirect.response_headers["Location"] == metadata
    assert refused.url == metadata and refused.error_class == "RefusedDestination" and refused.status_code is None
    assert "169.254" not in refused.error_message.replace(metadata, "")  # no internal address echoed
    assert len(httpserver.log) == 1 and Dispatch.objects.get(upload=upload).attempts == 1  # not retried
    assert upload.status == Upload.Status.NOT_DELIVERED and upload.errors[0]["id"] == "outbound_refused"
    assert "Outbound call refused" in caplog.text
    assert_no_secret(page_of(owner_client, upload), caplog.text)


def test_a_redirect_to_an_allowed_host_is_followed_without_the_token_on_a_new_host(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks):
    other_host = httpserver.url_for("/moved/").replace("localhost", "127.0.0.1")
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=308, headers={"Location": other_host})
    httpserver.expect_request("/moved/", method="POST").respond_with_data("", status=201)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    assert upload.status == Upload.Status.DELIVERED
    (first, _), (second, _) = httpserver.log
    assert first.headers["Authorization"] == f"Token {VENDOR_TOKEN}"
    assert "Authorization" not in second.headers and second.get_data() == BODY  # 308 keeps the body


def test_loopback_is_refused_when_not_allowed(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    httpserver.expect_request(PATH).respond_with_data("", status=201)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    assert httpserver.log == []  # nothing reached the server
    call = CallLog.objects.get(upload=upload)
    assert call.error_class == "RefusedDestination" and call.error_message == "Use an https:// URL."
    assert "127.0.0.1" not in call.error_message  # what it resolved to is for the server log only
    assert upload.status == Upload.Status.NOT_DELIVERED
    assert "PORTAL_OUTBOUND_ALLOWED_NETWORKS" not in page_of(owner_client, upload)


def test_sandbox_is_a_dry_run_that_makes_no_call(
        owner_client, tenant, vendor_integration, owner, httpserver, django_capture_on_commit_callbacks, caplog):
    services.set_sandbox(vendor_integration, owner, True)
    httpserver.expect_request(PATH).respond_with_data("", status=201)
    response = send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    assert httpserver.log == []
    assert upload.status == Upload.Status.DRY_RUN and upload.sandbox
    call = CallLog.objects.get(upload=upload)
    assert call.dry_run and call.status_code is None and call.url == httpserver.url_for(PATH)
    assert call.request_headers["Authorization"] == "[redacted]"
    assert call.request_headers["Content-Type"] == "application/json"
    assert call.request_body_excerpt == BODY.decode() and call.request_body_size == len(BODY)
    page = owner_client.get(response["Location"]).content.decode()
    assert "Nothing was sent" in page and "dry run, not sent" in page
    assert_no_secret(page, caplog.text)


def test_a_bad_file_is_refused_locally_and_nothing_is_stored_or_sent(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks):
    response = send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks, body=b"[{oops")
    assert response.status_code == 400
    assert "import_parse_json" in response.content.decode()
    assert not Upload.objects.exists() and not CallLog.objects.exists() and httpserver.log == []


def test_resend_is_a_new_attempt_series_for_editors_only_and_audited(
        owner_client, tenant, vendor_integration, viewer, httpserver, django_capture_on_commit_callbacks, client):
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(
        {"errors": [{"id": "import_transform_data", "description": "no"}]}, status=400)
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data("", status=201)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)
    upload = Upload.objects.get(integration=vendor_integration)
    assert upload.status == Upload.Status.NOT_DELIVERED
    resend = reverse("upload_resend", args=[tenant.slug, upload.pk])
    assert 'action="%s"' % resend in page_of(owner_client, upload)

    client.force_login(viewer)
    assert client.post(resend).status_code == 403
    assert 'action="%s"' % resend not in page_of(client, upload)

    client.force_login(upload.integration.tenant.memberships.get(role="owner").user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(resend, follow=True)
    upload.refresh_from_db()
    assert upload.status == Upload.Status.DELIVERED and upload.errors == []
    assert upload.dispatches.count() == 2 and len(httpserver.log) == 2
    assert "Resending" in response.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.UPLOAD_RESENT)
    assert event.integration == vendor_integration and event.actor.username == "olivia"


def test_a_duplicated_task_does_not_send_twice(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks):
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=201)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)
    dispatch = Dispatch.objects.get()
    send_dispatch.delay(dispatch.pk, 1)
    send_dispatch.delay(dispatch.pk, 2)
    assert len(httpserver.log) == 1 and CallLog.objects.count() == 1


def test_another_tenant_cannot_see_or_resend(
        owner_client, tenant, vendor_integration, outsider, httpserver, django_capture_on_commit_callbacks, client):
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=201)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)
    upload = Upload.objects.get()
    client.force_login(outsider)
    assert client.get(reverse("upload_detail", args=["globex", upload.pk])).status_code == 404
    assert client.post(reverse("upload_resend", args=["globex", upload.pk])).status_code == 404
    assert client.post(reverse("upload_resend", args=[tenant.slug, upload.pk])).status_code == 404


def test_outbound_integration_from_the_create_form_never_shows_its_token(owner_client, tenant):
    response = owner_client.post(reverse("integration_create", args=[tenant.slug]), {
        "name": "To vendor", "direction": "outbound", "protocol": "data_integration",
        "data_integration-data_type": "calls", "data_integration-data_format": "json",
        "data_integration-field_keys": "email, date, calls",
        "endpoint_url": "https://vendor.example.com/api/v1/data/calls/", "vault-data_integration-auth_token": VENDOR_TOKEN,
    }, follow=True)
    integration = Integration.objects.get(tenant=tenant, direction="outbound")
    assert integration.read_vendor_credentials() == {"auth_token": VENDOR_TOKEN}
    assert VENDOR_TOKEN not in integration.vendor_credentials  # encrypted at rest
    assert VENDOR_TOKEN not in response.content.decode()
    settings_page = owner_client.get(integration.get_absolute_url()).content.decode()
    assert VENDOR_TOKEN not in settings_page and 'name="vault-auth_token"' in settings_page


def test_admin_shows_call_logs_read_only(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, admin_client):
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=201)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)
    call = CallLog.objects.get()
    listing = admin_client.get(reverse("admin:uploads_calllog_changelist")).content.decode()
    assert call.url in listing
    detail = admin_client.get(reverse("admin:uploads_calllog_change", args=[call.pk])).content.decode()
    assert "[redacted]" in detail and 'name="_save"' not in detail and VENDOR_TOKEN not in detail
    assert admin_client.get(reverse("admin:uploads_calllog_add")).status_code == 403


def test_the_create_form_asks_for_the_vendor_token_of_an_outbound_integration(owner_client, tenant):
    response = owner_client.post(reverse("integration_create", args=[tenant.slug]), {
        "name": "To vendor", "direction": "outbound", "protocol": "data_integration",
        "data_integration-data_type": "calls", "data_integration-data_format": "json",
        "endpoint_url": "https://vendor.example.com/api/v1/data/calls/",
    })
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Integration.objects.filter(tenant=tenant).exists()


def test_without_a_stored_token_nothing_is_sent_and_the_upload_says_why(
        owner_client, tenant, owner, httpserver, django_capture_on_commit_callbacks):
    integration = services.create_integration(
        tenant, owner, name="No token", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=httpserver.url_for(PATH), credentials={"auth_token": "x"},
    )
    # Credentials lost afterwards (support cleared them): nothing is sent, and the upload says why.
    Integration.objects.filter(pk=integration.pk).update(vendor_credentials="")
    integration.refresh_from_db()
    services.set_sandbox(integration, owner, False)
    send(owner_client, tenant, integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=integration)
    assert httpserver.log == [] and not CallLog.objects.exists()
    assert upload.status == Upload.Status.NOT_DELIVERED
    assert upload.errors[0]["id"] == "outbound_not_configured"
    assert "No vendor AUTH_TOKEN" in page_of(owner_client, upload)


def test_between_attempts_the_upload_says_when_it_is_retried(
        owner_client, tenant, vendor_integration, httpserver, settings):
    """What the task's function leaves behind when it schedules a retry (here called directly,
    as a worker would, so that the next attempt does not run at once)."""
    from uploads.delivery.dispatch import run_attempt

    settings.PORTAL_OUTBOUND_BACKOFF_SECONDS = 30
    httpserver.expect_request(PATH, method="POST").respond_with_data("busy", status=503)
    upload = receive(vendor_integration, BODY, content_type="application/json", channel="api",
                         submitted_via="test")  # the task is queued on commit, which never comes here
    dispatch = Dispatch.objects.get(upload=upload)

    delay = run_attempt(dispatch.pk, 1)
    assert 24 <= delay <= 36
    assert run_attempt(dispatch.pk, 1) is None  # the same attempt again: claimed already, nothing sent
    assert len(httpserver.log) == 1
    dispatch.refresh_from_db()
    upload.refresh_from_db()
    assert dispatch.status == Dispatch.Status.WAITING and dispatch.attempts == 1
    assert 23 <= (dispatch.next_attempt_at - timezone.now()).total_seconds() <= 36
    assert upload.status == Upload.Status.SENDING and "Retrying in" in upload.message
    page = page_of(owner_client, upload)
    assert "next attempt at" in page and "503" in page


def test_a_201_whose_body_breaks_off_is_still_delivered_and_not_sent_again(
        owner_client, tenant, vendor_integration, httpserver, django_capture_on_commit_callbacks, settings):
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 0.3

    def slow_body(request):
        def body():
            yield b'{"id": '
            time.sleep(0.8)
            yield b"1}"
        return Response(body(), status=201, content_type="application/json")

    httpserver.expect_request(PATH, method="POST").respond_with_handler(slow_body)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)

    upload = Upload.objects.get(integration=vendor_integration)
    call = CallLog.objects.get(upload=upload)
    assert upload.status == Upload.Status.DELIVERED
    assert call.status_code == 201 and call.error_class  # the broken-off body is noted
    assert len(httpserver.log) <= 1 and Dispatch.objects.get(upload=upload).attempts == 1
    time.sleep(0.6)  # let the server finish its answer before the next test


def test_an_attempt_abandoned_by_a_dead_worker_is_taken_over(
        owner_client, tenant, owner, vendor_integration, httpserver, django_capture_on_commit_callbacks):
    """acks_late redelivers the task of a worker that died mid-attempt; once the dead worker's
    claim has expired, the redelivered task makes the attempt (and only then)."""
    services.set_sandbox(vendor_integration, owner, True)  # accept the file without sending it…
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)
    upload = Upload.objects.get()
    # … then make it look like a worker claimed attempt 1 and died before recording anything.
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.SENDING)
    dispatch = Dispatch.objects.get()
    claimed_at = timezone.now() - timedelta(seconds=10)
    Dispatch.objects.filter(pk=dispatch.pk).update(status=Dispatch.Status.SENDING, attempts=1, claimed_at=claimed_at)
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=201)

    # Within the lease the attempt still belongs to the (maybe dead) worker: nothing is sent.
    assert outbound.run_attempt(dispatch.pk, 1) is None
    assert 1 < outbound.abandoned_attempt_check_in(dispatch.pk, 1) <= outbound.attempt_lease_seconds()
    assert len(httpserver.log) == 0

    # Past the lease, the redelivered task takes it over and delivers once.
    expired = timezone.now() - timedelta(seconds=outbound.attempt_lease_seconds() + 1)
    Dispatch.objects.filter(pk=dispatch.pk).update(claimed_at=expired)
    send_dispatch.delay(dispatch.pk, 1)
    send_dispatch.delay(dispatch.pk, 1)
    upload.refresh_from_db()
    assert upload.status == Upload.Status.DELIVERED
    assert len(httpserver.log) == 1
    assert outbound.abandoned_attempt_check_in(dispatch.pk, 1) is None


def test_a_long_send_renews_its_claim_so_it_is_not_taken_for_a_dead_workers(
        owner_client, tenant, owner, vendor_integration, django_capture_on_commit_callbacks, monkeypatch):
    """The lease counts from the attempt's last sign of life: each exchange's start and the reads
    of a streaming body renew the claim (at most every quarter of a lease), so a takeover comes a
    lease after the worker died, not a lease after the attempt began."""
    services.set_sandbox(vendor_integration, owner, True)
    send(owner_client, tenant, vendor_integration, django_capture_on_commit_callbacks)
    upload = Upload.objects.get()
    long_ago = timezone.now() - timedelta(seconds=exchange.attempt_lease_seconds() - 1)
    Dispatch.objects.filter(upload=upload).update(status=Dispatch.Status.SENDING, attempts=1, claimed_at=long_ago)
    dispatch = Dispatch.objects.select_related("upload__integration").get(upload=upload)
    sending = exchange.Exchanges(dispatch, 1, None)

    sending.renew_claim()  # a quarter of a lease has not passed since the claim: nothing written
    assert Dispatch.objects.get(pk=dispatch.pk).claimed_at == long_ago

    sending._renewed -= exchange.attempt_lease_seconds() / 4  # as if the body had streamed that long
    with exchange._opened(stored_body(upload), sending.renew_claim) as body:
        assert body.read() == BODY
    renewed = Dispatch.objects.get(pk=dispatch.pk).claimed_at
    assert renewed > long_ago + timedelta(seconds=exchange.attempt_lease_seconds() / 2)
    assert claim(dispatch.pk, 1) is None  # alive: not another task's to take over


def waiting_dispatch(owner_client, tenant, owner, integration, capture):
    """A file accepted in Sandbox Mode, then made to wait for its first attempt out of it."""
    services.set_sandbox(integration, owner, True)
    send(owner_client, tenant, integration, capture)
    services.set_sandbox(integration, owner, False)
    Upload.objects.update(status=Upload.Status.SENDING)
    Dispatch.objects.update(status=Dispatch.Status.WAITING, attempts=0, progress={"batches": [1, 2]})
    return Dispatch.objects.get()


def test_a_claim_reads_the_dispatch_its_upload_and_integration_as_the_orm_does(
        owner_client, tenant, owner, vendor_integration, django_capture_on_commit_callbacks):
    """The claim's SQL is written by hand: every field reads back as the ORM reads it (JSON,
    dates, booleans, on either database)."""
    dispatch = waiting_dispatch(owner_client, tenant, owner, vendor_integration, django_capture_on_commit_callbacks)
    claimed = claim(dispatch.pk, 1)
    loaded = Dispatch.objects.select_related("upload__integration").get(pk=dispatch.pk)
    for mine, orm in [(claimed, loaded), (claimed.upload, loaded.upload),
                      (claimed.upload.integration, loaded.upload.integration)]:
        for field in type(orm)._meta.concrete_fields:
            assert getattr(mine, field.attname) == getattr(orm, field.attname), field.name
    assert (claimed.status, claimed.attempts, claimed.progress) == (Dispatch.Status.SENDING, 1, {"batches": [1, 2]})
    assert claimed.upload.integration.settings == loaded.upload.integration.settings != {}
    assert claim(dispatch.pk, 1) is None and claim(dispatch.pk, 2) is None


def test_a_delivered_file_costs_three_statements_on_postgresql(
        owner_client, tenant, owner, vendor_integration, httpserver, django_capture_on_commit_callbacks):
    """Claim and read; the call log's row; the outcome with the answer. (Outside a test's
    transaction, a SET and a RESET of synchronous_commit come around them.)"""
    dispatch = waiting_dispatch(owner_client, tenant, owner, vendor_integration, django_capture_on_commit_callbacks)
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=201)
    with CaptureQueriesContext(connection) as queries:
        assert outbound.run_attempt(dispatch.pk, 1) is None
    assert Upload.objects.get().status == Upload.Status.DELIVERED
    assert CallLog.objects.get(dry_run=False).status_code == 201
    statements = [query["sql"].split()[0] for query in queries]
    if connection.vendor == "postgresql":
        assert statements == ["WITH", "INSERT", "WITH"]
    else:  # the same, in separate statements and a transaction
        assert statements.count("UPDATE") == 4 and len(statements) <= 9


def test_an_outcome_is_written_all_or_nothing(
        owner_client, tenant, owner, vendor_integration, django_capture_on_commit_callbacks):
    dispatch = waiting_dispatch(owner_client, tenant, owner, vendor_integration, django_capture_on_commit_callbacks)
    with pytest.raises(IntegrityError), transaction.atomic():
        update_together((Upload.objects.filter(pk=dispatch.upload_id), {"message": "written?"}),
                        (Dispatch.objects.filter(pk=dispatch.pk), {"failures": -1}))  # a CHECK refuses it
    assert Upload.objects.get().message != "written?"


def test_an_answer_kept_for_the_outcome_is_written_before_anything_later(
        owner_client, tenant, owner, vendor_integration, httpserver, django_capture_on_commit_callbacks):
    dispatch = waiting_dispatch(owner_client, tenant, owner, vendor_integration, django_capture_on_commit_callbacks)
    dispatch = claim(dispatch.pk, 1)
    httpserver.expect_request("/step", method="GET").respond_with_data("ok", status=200)
    http = exchange.Exchanges(dispatch, 1, Redactor(), exchange.shared_session(), answers_with_outcome=True)
    for step in (1, 2):
        http.exchange(OutboundRequest("GET", httpserver.url_for("/step"), {}))
        # The last answer waits for the outcome; an earlier one was written when the next call began.
        answers = CallLog.objects.filter(dry_run=False).order_by("pk").values_list("status_code", flat=True)
        assert list(answers) == [200] * (step - 1) + [None]
    http.keep_progress({"batches": 2})  # progress never runs ahead of the call log
    assert list(CallLog.objects.filter(dry_run=False).values_list("status_code", flat=True)) == [200, 200]
