"""The request log: every request to a protocol's endpoint, accepted or refused, is in the history.

Through the front door: the test client posts to the real endpoints (seed 000's data endpoint,
reference 004's import endpoint, the REST API's upload action) and the upload form, and the
tenant's pages show what came of each. Refused bodies leave an excerpt only; requests without
a valid credential are counted, not stored one by one.
"""

import datetime
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations import services
from uploads import request_log
from uploads.models import RequestLog, Upload

pytestmark = pytest.mark.django_db

GOOD = [{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]


def url(name, tenant, *args):
    return reverse(name, args=[tenant.slug, *args])


@pytest.fixture
def token(calls_integration, owner):
    return services.regenerate_integration_token(calls_integration, owner)


def post(client, token, body, path="/api/v1/data/calls/", content_type="application/json", **extra):
    return client.post(path, data=body, content_type=content_type, HTTP_AUTHORIZATION=f"Token {token}",
                       REMOTE_ADDR="203.0.113.7", **extra)


def test_four_bad_posts_and_a_good_one_are_all_in_the_history(client, owner_client, tenant, calls_integration, token,
                                                              django_capture_on_commit_callbacks):
    bad_values = json.dumps([{**GOOD[0], "date": "2016-08-16", "calls": "lots"}])
    answers = [
        post(client, token, '[{"email": "a@x.com",'),  # import_parse_json
        post(client, token, bad_values),  # import_transform_data, twice
        post(client, token, json.dumps(GOOD), path="/api/v1/data/calls"),  # no trailing slash
        post(client, token, "email,date,calls\na@x.com,8/16/2016,3\n", content_type="text/csv"),  # wrong type
    ]
    assert [a.status_code for a in answers] == [400, 400, 404, 400]
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, token, json.dumps(GOOD)).status_code == 201

    rows = list(RequestLog.objects.order_by("id"))
    assert [(r.status_code, r.error_ids) for r in rows] == [
        (400, ["import_parse_json"]), (400, ["import_transform_data"]), (404, ["trailing_slash_required"]),
        (400, ["import_transform_data"]), (201, [])]
    assert {(r.tenant_id, r.integration_id, r.protocol, str(r.client_address)) for r in rows} == {
        (tenant.pk, calls_integration.pk, "data_integration", "203.0.113.7")}
    assert [r.path for r in rows][2] == "/api/v1/data/calls"
    refused, accepted = rows[1], rows[4]
    assert refused.upload is None and refused.excerpt == bad_values and refused.size_bytes == len(bad_values)
    assert refused.message == ("2 errors: date: The date must look like 8/16/2016 (M/D/YYYY). (1×); "
                               "calls: This must be a number. (1×)")
    assert accepted.upload == Upload.objects.get() and accepted.channel == "api" and accepted.excerpt == ""
    assert Upload.objects.count() == 1  # refused requests still store nothing

    page = owner_client.get(url("request_list", tenant)).content.decode()
    for expected in ["import_parse_json", "trailing_slash_required", "POST /api/v1/data/calls", "203.0.113.7",
                     "201 Accepted", "400 Refused", f"Upload #{accepted.upload_id}"]:
        assert expected in page
    assert token not in page
    failures = owner_client.get(url("failures", tenant)).content.decode()
    assert failures.count("Request refused (") == 4
    detail = owner_client.get(url("request_detail", tenant, refused.pk)).content.decode()
    assert "Start of the body" in detail and "This must be a number." in detail


@pytest.mark.parametrize("proxies, forwarded, logged", [
    (0, "198.51.100.9", "203.0.113.7"),  # no proxy in front: the header is the client's word, not read
    (1, "198.51.100.9", "198.51.100.9"),  # what the one proxy saw
    (1, "10.9.9.9, 198.51.100.9", "198.51.100.9"),  # the client sent a header of its own: not read
    (2, "10.9.9.9, 198.51.100.9, 192.0.2.1", "198.51.100.9"),  # what the outer of two proxies saw
    (2, "198.51.100.9", "203.0.113.7"),  # past fewer proxies than there are: the server's peer
    (1, "", "203.0.113.7"),
    (1, "not-an-address", None),
    (1, "2001:db8::1", "2001:db8::1"),
])
def test_behind_proxies_the_client_address_is_the_one_the_outermost_proxy_saw(
        client, token, settings, proxies, forwarded, logged):
    settings.PORTAL_PROXY_COUNT = proxies
    post(client, token, "[", HTTP_X_FORWARDED_FOR=forwarded)
    row = RequestLog.objects.get()
    assert (str(row.client_address) if row.client_address else None) == logged


def test_a_refused_upload_form_file_is_logged_with_its_causes(editor_client, tenant, activity_integration):
    rows = "".join(f"u{n}@x.com,2026-11-01,3,1,1\n" for n in range(150))
    editor_client.post(url("upload_create", tenant), {
        "integration": activity_integration.pk,
        "file": SimpleUploadedFile("activity.csv", f"email,date,calls,talk_minutes,deals\n{rows}".encode())})
    row = RequestLog.objects.get()
    assert (row.channel, row.status_code, row.integration, row.error_ids) == (
        "web", 400, activity_integration, ["import_transform_data"])
    assert row.message == "150 errors: date: The date must look like 8/16/2016 (M/D/YYYY)."
    assert row.excerpt.startswith("email,date,calls") and Upload.objects.count() == 0
    page = editor_client.get(url("request_list", tenant) + "?channel=web&status=refused").content.decode()
    assert "Web form" in page and "150 errors" in page


def test_requests_without_a_valid_credential_are_counted_not_stored(client, calls_integration, token):
    for _ in range(30):
        assert post(client, "0badc0de.not-a-token", json.dumps(GOOD)).status_code == 401
    row = RequestLog.objects.get()
    assert (row.tenant, row.integration, row.count, row.status_code, row.excerpt) == (None, None, 30, 401, "")
    assert row.error_ids == ["authentication_failed"]


def test_a_flood_from_many_addresses_fills_a_bounded_number_of_rows(client, calls_integration, settings):
    limit = request_log.UNAUTHENTICATED_ROWS_PER_MINUTE
    for n in range(limit + 40):
        client.post("/api/v1/data/calls/", data="[]", content_type="application/json",
                    HTTP_AUTHORIZATION="Token 0badc0de.nope", REMOTE_ADDR=f"198.51.{n // 250}.{n % 250}")
    assert RequestLog.objects.count() <= limit + 1
    assert sum(RequestLog.objects.values_list("count", flat=True)) == limit + 40


def test_a_missing_trailing_slash_is_attributed_by_the_token_it_carried(client, calls_integration, token):
    post(client, token, json.dumps(GOOD), path="/api/v1/data/calls")
    row = RequestLog.objects.get()
    assert (row.integration, row.error_ids) == (calls_integration, ["trailing_slash_required"])


def test_secrets_in_a_refused_body_are_redacted(client, calls_integration, token):
    post(client, token, '{"client_secret": "s3cr3t-value", "password": "hunter2", "note": "x"')
    row = RequestLog.objects.get()
    assert "s3cr3t-value" not in row.excerpt and "hunter2" not in row.excerpt
    assert '"client_secret": "[redacted]"' in row.excerpt and '"note": "x"' in row.excerpt


def test_the_import_endpoint_and_the_rest_api_are_logged_too(client, tenant, owner, api_token):
    source = services.create_integration(tenant, owner, name="Feedback", protocol="source_import", source_id="crm")
    key = services.regenerate_integration_token(source, owner)
    client.post("/api/v1/source/import", data='{"source_id": "crm", "payload": [{"date": "nope"}]}',
                content_type="application/json", HTTP_X_API_KEY=key)
    calls = services.create_integration(tenant, owner, name="Calls", data_type="calls", data_format="json",
                                        field_keys=["email", "date", "calls"])
    client.post(f"/api/v3/integrations/{calls.pk}/uploads/",
                {"file": SimpleUploadedFile("c.json", b'[{"email": "a@x.com"}]', "application/json")},
                HTTP_AUTHORIZATION=f"Token {api_token}")
    imported, rest = RequestLog.objects.order_by("id")
    assert (imported.integration, imported.protocol, imported.status_code) == (source, "source_import", 400)
    assert (rest.integration, rest.channel, rest.status_code, rest.error_ids) == (
        calls, "api", 400, ["import_transform_data"])
    owner_client = Client()
    owner_client.force_login(owner)
    page = owner_client.get(url("request_list", tenant) + "?channel=rest").content.decode()
    assert "REST API" in page and "/api/v1/source/import" not in page
    page = owner_client.get(url("request_list", tenant) + "?channel=endpoint:source_import").content.decode()
    assert "POST /api/v1/source/import" in page and "REST API" not in page.split("<tbody>")[1]


def test_the_history_filters_by_integration_answer_and_date(owner_client, tenant, calls_integration,
                                                            activity_integration):
    old = timezone.now() - datetime.timedelta(days=3)
    for integration, status, when in [(calls_integration, 201, old), (calls_integration, 400, timezone.now()),
                                      (activity_integration, 400, timezone.now())]:
        RequestLog.objects.create(tenant=tenant, integration=integration, method="POST", path=f"/x/{integration.key}/",
                                  status_code=status, created_at=when)
    listed = lambda query: owner_client.get(url("request_list", tenant) + query).content.decode().count(  # noqa: E731
        'class="accepted"') + owner_client.get(url("request_list", tenant) + query).content.decode().count(
        'class="refused"')
    assert listed("") == 3
    assert listed(f"?integration={calls_integration.pk}") == 2
    assert listed("?status=refused") == 2
    assert listed(f"?since={timezone.localdate().isoformat()}") == 2
    assert listed(f"?until={(old.date()).isoformat()}&integration={calls_integration.pk}") == 1
    assert listed("?since=not-a-date") == 3  # a bad filter is ignored, not an error


def test_another_tenant_sees_none_of_it(client, outsider_client, tenant, calls_integration, token):
    post(client, token, "[")
    row = RequestLog.objects.get()
    assert outsider_client.get(url("request_detail", tenant, row.pk)).status_code == 404
    assert outsider_client.get(reverse("request_detail", args=["globex", row.pk])).status_code == 404
    page = outsider_client.get(reverse("request_list", args=["globex"])).content.decode()
    assert "No requests yet" in page and "import_parse_json" not in page


def test_each_integration_shows_its_last_success_last_failure_and_failures(owner_client, tenant, calls_integration,
                                                                           activity_integration):
    now = timezone.now()
    RequestLog.objects.create(tenant=tenant, integration=calls_integration, method="POST", path="/", status_code=201,
                              created_at=now - datetime.timedelta(hours=2))
    for minutes in (30, 20, 10):
        RequestLog.objects.create(tenant=tenant, integration=calls_integration, method="POST", path="/",
                                  status_code=400, created_at=now - datetime.timedelta(minutes=minutes))
    RequestLog.objects.create(tenant=tenant, integration=calls_integration, method="POST", path="/", status_code=400,
                              created_at=now - datetime.timedelta(days=9))  # too old to count
    health = request_log.health([calls_integration, activity_integration])
    assert health[calls_integration.pk]["failures"] == 3 and health[calls_integration.pk]["failing"]
    assert health[calls_integration.pk]["last_success"] == now - datetime.timedelta(hours=2)
    assert health[activity_integration.pk] == {"last_success": None, "last_failure": None, "failures": 0,
                                               "failing": False}
    page = owner_client.get(url("dashboard", tenant)).content.decode()
    assert "Needs attention" in page and "3 failures in the last 7 days, and nothing has succeeded since." in page


def test_the_upload_history_filters_by_status_and_channel_and_failures_include_failed_uploads(
        owner_client, tenant, calls_integration, activity_integration):
    for integration, status, channel in [(calls_integration, "processed", "api"), (calls_integration, "failed", "web"),
                                         (activity_integration, "failed", "api")]:
        Upload.objects.create(tenant=tenant, integration=integration, status=status, channel=channel,
                              message=f"{status} by {channel}")
    rows = lambda query: owner_client.get(url("upload_history", tenant) + query).content.decode().count(  # noqa: E731
        'data-label="Upload"')
    assert rows("") == 3 and rows("?status=failed") == 2 and rows("?status=failed&channel=web") == 1
    assert rows(f"?integration={activity_integration.pk}") == 1
    assert "No upload matches these filters" in owner_client.get(url("upload_history", tenant)
                                                                 + "?status=skipped").content.decode()
    page = owner_client.get(url("failures", tenant) + f"?integration={calls_integration.pk}").content.decode()
    assert page.count("Upload #") == 1 and "failed by web" in page


def test_rows_older_than_the_kept_days_are_pruned(client, calls_integration, token, settings):
    settings.PORTAL_REQUEST_LOG_DAYS = 30
    for _ in range(3):
        post(client, token, GOOD)
    old, recent, new = RequestLog.objects.order_by("id")
    now = timezone.now()
    RequestLog.objects.filter(pk=old.pk).update(created_at=now - datetime.timedelta(days=31))
    RequestLog.objects.filter(pk=recent.pk).update(created_at=now - datetime.timedelta(days=29))
    assert request_log.prune(now) == 1
    assert list(RequestLog.objects.order_by("id").values_list("id", flat=True)) == [recent.pk, new.pk]
    assert Upload.objects.count() == 3  # the uploads themselves stay
