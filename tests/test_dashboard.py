"""The tenant's landing page, and the small things an admin meets on the way: the tenant
switcher, counts that read well, Activity in words, an outbound upload's page (live call list,
Send now and Cancel between attempts, each thing said once), errors logged once, DEBUG off."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from integrations import services
from portal.models import AuditEvent, Membership
from uploads.delivery.dispatch import run_attempt
from uploads.intake import receive
from uploads.models import CallLog, Dispatch, RequestLog, Upload
from uploads.tasks import send_dispatch

pytestmark = pytest.mark.django_db

VENDOR_PATH = "/api/v1/data/calls/"
BODY = json.dumps([{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]).encode()
CSV = b"email,date,calls,talk_minutes,deals\nann@x.com,8/16/2016,3,10,1\n"


def url(name, tenant, *args):
    return reverse(name, args=[tenant.slug, *args])


def test_a_member_lands_on_the_dashboard_and_one_of_two_tenants_can_switch(client, tenant, owner, other_tenant):
    client.force_login(owner)
    assert client.get("/").url == url("dashboard", tenant)
    page = client.get(url("dashboard", tenant)).content.decode()
    assert '<span class="tenant-name">' in page and "Switch tenant" not in page
    Membership.objects.create(tenant=other_tenant, user=owner, role=Membership.Role.VIEWER)
    page = client.get(url("dashboard", tenant)).content.decode()
    assert f'href="{reverse("home")}">Switch tenant</a>' in page
    home = client.get("/").content.decode()
    assert url("dashboard", tenant) in home and url("dashboard", other_tenant) in home


def test_an_empty_tenant_says_what_to_do(owner_client, tenant, viewer):
    page = owner_client.get(url("dashboard", tenant)).content.decode()
    assert "No integrations yet." in page and "Create your first integration" in page
    assert "Nothing has been sent yet." in page
    viewer_client = Client()
    viewer_client.force_login(viewer)
    page = viewer_client.get(url("dashboard", tenant)).content.decode()
    assert "Ask someone with the “Integrations: Edit” permission" in page and "New integration" not in page


@pytest.fixture
def halted(tenant, owner, activity_integration, django_capture_on_commit_callbacks):
    """Out of Sandbox Mode: an upload failed processing (its stored file is gone), one waits behind it."""
    services.set_sandbox(activity_integration, owner, False)
    failed = receive(activity_integration, CSV, channel="api", content_type="text/csv")
    failed.file.storage.delete(failed.file.name)
    with django_capture_on_commit_callbacks(execute=True):
        failed = Upload.objects.get(pk=failed.pk)
        from uploads import processing

        processing.process_upload(failed.pk)
        waiting = receive(activity_integration, CSV, channel="api", content_type="text/csv")
    failed.refresh_from_db()
    waiting.refresh_from_db()
    assert (failed.status, waiting.status) == ("failed", "waiting")
    return failed, waiting


def test_the_dashboard_says_what_needs_attention(owner_client, tenant, calls_integration, halted,
                                                 django_capture_on_commit_callbacks, owner):
    failed, _ = halted
    token = services.regenerate_integration_token(calls_integration, owner)
    with django_capture_on_commit_callbacks(execute=True):
        Client().post("/api/v1/data/calls/", BODY, content_type="application/json",
                      HTTP_AUTHORIZATION=f"Token {token}")
    page = owner_client.get(url("dashboard", tenant)).content.decode()
    attention = page.split('id="attention-title"')[1].split("</section>")[0]
    assert f"Upload #{failed.pk} failed and Sandbox Mode is off: 1 later upload waits behind it." in attention
    assert f'href="{failed.get_absolute_url()}">Retry or skip it</a>' in attention
    table = page.split('<table class="table stack dashboard">')[1].split("</table>")[0]
    calls_row = table.split("<tr>")[-1]
    assert "Calls" in calls_row and "Sandbox Mode" in calls_row and "Processed" in calls_row
    assert "just now" in calls_row and "3 of 4 steps" in calls_row  # metrics, token and a file; Sandbox Mode on
    activity_row = [row for row in table.split("<tr>") if ">Activity</a>" in row][0]
    assert "Waiting behind a failed upload" in activity_row and "Sandbox Mode" not in activity_row


def test_the_dashboard_costs_the_same_queries_for_more_integrations(owner_client, tenant, owner,
                                                                    django_assert_max_num_queries):
    def integrations(n):
        for i in range(n):
            services.create_integration(tenant, owner, name=f"I{i}", data_type=f"t{i}-{n}", field_keys=["email", "date"])

    integrations(2)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        owner_client.get(url("dashboard", tenant))
    integrations(6)
    with django_assert_max_num_queries(len(few.captured_queries)):
        owner_client.get(url("dashboard", tenant))


def test_counts_read_with_separators_and_a_purged_upload_shows_no_values(owner_client, tenant, calls_integration):
    upload = Upload.objects.create(tenant=tenant, integration=calls_integration, channel="api", status="purged",
                                   records=12480, values_written=37440)
    page = owner_client.get(upload.get_absolute_url()).content.decode()
    assert '<dd data-field="records">12,480</dd>' in page and '<dd data-field="values_written">purged</dd>' in page
    history = owner_client.get(url("upload_history", tenant)).content.decode()
    assert "12,480" in history and "37,440" not in history


def test_activity_reads_as_words(owner_client, tenant, calls_integration, owner):
    services.update_integration(calls_integration, owner, {"unknown_user": "reject"})
    page = owner_client.get(url("activity", tenant)).content.decode()
    assert "fields: unknown user" in page and "[&#x27;" not in page and "['" not in page


def test_a_refusal_is_logged_once_without_a_traceback(viewer_client, tenant, calls_integration):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("django.request")
    keep = Keep()
    logger.addHandler(keep)  # beside the console handler that settings.LOGGING gives "django"
    try:
        response = viewer_client.post(url("integration_delete", tenant, calls_integration.pk))
    finally:
        logger.removeHandler(keep)
    assert response.status_code == 403
    assert len(records) == 1 and records[0].exc_info is None
    assert logging.getLogger("django").handlers and not logging.getLogger("django").propagate


def test_debug_is_off_unless_asked_for():
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.stdout.strip() == "False"


# --- An outbound upload's page --------------------------------------------------------------


@pytest.fixture
def vendor(tenant, owner, httpserver, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.PORTAL_OUTBOUND_BACKOFF_SECONDS = 30
    integration = services.create_integration(
        tenant, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=httpserver.url_for(VENDOR_PATH),
        credentials={"auth_token": "vendor-Secret-7f3c9a1be24d"})
    services.set_sandbox(integration, owner, False)
    return integration


@pytest.fixture
def retrying(vendor, httpserver):
    """Attempt 1 answered 503; attempt 2 is due in about 30 s (run as a worker would, so that it does not run at once)."""
    httpserver.expect_ordered_request(VENDOR_PATH, method="POST").respond_with_data("busy", status=503)
    upload = receive(vendor, BODY, content_type="application/json", channel="api", submitted_via="test")
    dispatch = Dispatch.objects.get(upload=upload)
    assert run_attempt(dispatch.pk, 1) > 20
    return upload, dispatch


def test_the_status_carries_the_call_list_and_the_next_attempt(owner_client, retrying):
    upload, dispatch = retrying
    status = owner_client.get(url("upload_status", upload.tenant, upload.pk)).json()
    dispatch.refresh_from_db()
    assert status["next_attempt_at"] == dispatch.next_attempt_at.isoformat()
    assert status["message"] == "Attempt 1 of 5 failed: The vendor answered 503."  # the countdown is live, apart
    assert "503" in status["calls_html"] and "Attempt 1 of 5 failed; next attempt at" in status["calls_html"]
    assert "Send now" in status["calls_html"] and "Cancel" in status["calls_html"]


def test_send_now_makes_the_next_attempt_at_once(owner_client, retrying, httpserver,
                                                  django_capture_on_commit_callbacks):
    upload, dispatch = retrying
    httpserver.expect_ordered_request(VENDOR_PATH, method="POST").respond_with_json({"id": 1}, status=201)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url("upload_send_now", upload.tenant, upload.pk), follow=True)
    assert "The next attempt is being made now." in response.content.decode()
    upload.refresh_from_db()
    assert upload.status == "delivered" and len(httpserver.log) == 2
    send_dispatch(dispatch.pk, 2)  # the attempt's task scheduled before: finds it made, sends nothing
    assert len(httpserver.log) == 2 and CallLog.objects.filter(upload=upload).count() == 2
    assert AuditEvent.objects.filter(action="upload.sent_now", target=f"Upload #{upload.pk}").exists()


def test_cancel_stops_the_attempts_between_two(owner_client, retrying, httpserver, viewer):
    upload, dispatch = retrying
    viewer_client = Client()
    viewer_client.force_login(viewer)
    assert viewer_client.post(url("upload_cancel", upload.tenant, upload.pk)).status_code == 403
    response = owner_client.post(url("upload_cancel", upload.tenant, upload.pk), follow=True)
    assert "Sending cancelled: no further attempt is made." in response.content.decode()
    upload.refresh_from_db()
    dispatch.refresh_from_db()
    assert (upload.status, dispatch.status) == ("not_delivered", "failed")
    assert upload.message == "Cancelled by olivia after 1 attempt."
    send_dispatch(dispatch.pk, 2)  # the task that was scheduled: nothing to claim
    assert len(httpserver.log) == 1
    # Nothing is waiting any more: both answer so, and the page offers Resend instead.
    again = owner_client.post(url("upload_send_now", upload.tenant, upload.pk), follow=True).content.decode()
    assert "Nothing of this upload is waiting to be sent" in again and "Resend" in again
    assert AuditEvent.objects.filter(action="upload.cancelled").exists()
    activity = owner_client.get(url("activity", upload.tenant)).content.decode()
    assert "Upload cancelled" in activity


def test_a_refused_send_says_not_delivered_once_and_in_words(owner_client, vendor, settings,
                                                             django_capture_on_commit_callbacks, tenant):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url("upload_create", tenant), {
            "integration": vendor.pk, "file": SimpleUploadedFile("c.json", BODY, "application/json")})
    upload = Upload.objects.get()
    assert upload.status == "not_delivered" and upload.message.startswith("Not delivered: Refused")
    page = owner_client.get(upload.get_absolute_url()).content.decode()
    status = page.split('id="upload-progress"')[1].split("</dl>")[0]
    assert status.count("Not delivered") == 1 and "Refused: Use an https:// URL." in status
    call = page.split('<details class="exchange"')[1]
    assert ">Refused</span>" in call and "RefusedDestination:" not in call


def test_another_tenant_cannot_send_now_or_cancel(retrying, outsider_client):
    upload, _ = retrying
    for name in ("upload_send_now", "upload_cancel"):
        assert outsider_client.post(reverse(name, args=["acme", upload.pk])).status_code == 404
        assert outsider_client.post(reverse(name, args=["globex", upload.pk])).status_code == 404
    upload.refresh_from_db()
    assert upload.status == "sending"


def test_support_reads_uploads_and_requests_in_the_admin_without_changing_them(admin_client, tenant,
                                                                               calls_integration):
    upload = Upload.objects.create(tenant=tenant, integration=calls_integration, channel="api", status="failed")
    logged = RequestLog.objects.create(tenant=tenant, integration=calls_integration, method="POST", path="/x/",
                                       status_code=400, error_ids=["import_parse_json"])
    page = admin_client.get(f"/admin/uploads/upload/{upload.pk}/change/").content.decode()
    assert 'name="status"' not in page and 'name="records"' not in page and 'name="file"' not in page
    assert admin_client.get("/admin/uploads/upload/add/").status_code == 403
    assert admin_client.get("/admin/uploads/requestlog/").status_code == 200
    page = admin_client.get(f"/admin/uploads/requestlog/{logged.pk}/change/").content.decode()
    assert "import_parse_json" in page and 'name="status_code"' not in page
    assert admin_client.get("/admin/uploads/requestlog/add/").status_code == 403
