"""The upload form, an upload's page (progress, errors, Retry and Skip) and the upload history."""

import csv
import io
import json
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from integrations import services
from integrations.models import Integration
from portal.models import AuditEvent
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db

GOOD_CSV = b"email,date,calls,talk_minutes,deals\nann@x.com,8/16/2016,3,10,1\nbob@x.com,8/16/2016,2,5,0\n"


def url(name, tenant, *args):
    return reverse(name, args=[tenant.slug, *args])


def upload_file(client, tenant, integration, content, name="activity.csv", capture=None):
    data = {"integration": integration.pk, "file": SimpleUploadedFile(name, content)}
    if capture is None:
        return client.post(url("upload_create", tenant), data)
    with capture(execute=True):
        return client.post(url("upload_create", tenant), data)


def test_the_form_accepts_a_file_and_shows_its_progress_page(editor_client, tenant, activity_integration, editor,
                                                             django_capture_on_commit_callbacks):
    response = upload_file(editor_client, tenant, activity_integration, GOOD_CSV,
                           capture=django_capture_on_commit_callbacks)
    upload = Upload.objects.get()
    assert response.status_code == 302 and response.url == upload.get_absolute_url()
    assert (upload.channel, upload.submitted_by, upload.submitted_via) == ("web", editor, "eddie")
    assert (upload.status, upload.records, upload.values_written) == ("processed", 2, 6)
    page = editor_client.get(response.url).content.decode()
    assert "Processed" in page and 'data-done="true"' in page and "upload_progress.js" not in page
    assert MetricValue.objects.count() == 6


def test_an_editor_downloads_the_file_as_it_arrived_from_its_upload_page(
        editor_client, viewer, tenant, activity_integration, django_capture_on_commit_callbacks):
    viewer_client = Client()
    viewer_client.force_login(viewer)
    upload_file(editor_client, tenant, activity_integration, GOOD_CSV, name="march.csv",
                capture=django_capture_on_commit_callbacks)
    upload = Upload.objects.get()
    download = url("upload_download", tenant, upload.pk)
    assert download in editor_client.get(upload.get_absolute_url()).content.decode()
    answer = editor_client.get(download)
    assert answer.status_code == 200 and b"".join(answer.streaming_content) == GOOD_CSV
    assert 'filename="march.csv"' in answer["Content-Disposition"]
    # Viewers see the upload, not the file; after a purge there is no file to give.
    assert download not in viewer_client.get(upload.get_absolute_url()).content.decode()
    assert viewer_client.get(download).status_code == 403
    upload.file.storage.delete(upload.file.name)
    Upload.objects.filter(pk=upload.pk).update(file="", status=Upload.Status.PURGED)
    assert editor_client.get(download).status_code == 404


def test_the_progress_page_polls_a_status_endpoint_until_done(editor_client, tenant, activity_integration,
                                                              django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as pending:
        response = upload_file(editor_client, tenant, activity_integration, GOOD_CSV)
    upload = Upload.objects.get()
    page = editor_client.get(response.url).content.decode()
    status_url = url("upload_status", tenant, upload.pk)
    assert "upload_progress.js" in page and f'data-status-url="{status_url}"' in page and "Queued" in page
    assert editor_client.get(status_url).json() | {} == {
        **editor_client.get(status_url).json(), "status": "queued", "done": False, "records": 2, "values_written": 0}
    for callback in pending:  # the worker runs
        callback()
    status = editor_client.get(status_url).json()
    assert (status["status"], status["done"], status["values_written"], status["percent"]) == ("processed", True, 6, 100)
    assert status["seconds"] is not None


def test_the_form_shows_the_same_errors_as_the_api_and_stores_nothing(editor_client, tenant, activity_integration,
                                                                       settings):
    bad = GOOD_CSV + b"cy@x.com,8/16/2016,lots,1,1\n"
    response = upload_file(editor_client, tenant, activity_integration, bad)
    assert response.status_code == 400
    page = response.content.decode()
    assert "activity.csv was not accepted; nothing was stored." in page
    # The errors grouped by cause: how many rows, the column, what is wrong, the value found and where.
    report = page.split('<table class="table stack report">')[1].split("</table>")[0]
    assert "<strong>1</strong>" in report and "<code>calls</code>" in report and "This must be a number." in report
    assert "<code>import_transform_data</code>" in report and "“<code>lots</code>”" in report and "row 3" in report
    assert Upload.objects.count() == 0 and Account.objects.count() == 0
    assert not os.path.exists(settings.MEDIA_ROOT) or not any(files for _, _, files in os.walk(settings.MEDIA_ROOT))


@pytest.mark.parametrize("content,name,error_id", [
    (b"email,date,calls\n\"ann@x.com,8/16/2016,3\n", "broken.csv", "import_parse_csv"),
    (b'[{"email": "ann@x.com"', "calls.json", "import_transform_data"),  # JSON to a CSV integration
    (b"", "empty.csv", None),
])
def test_the_form_shows_each_error_id(editor_client, tenant, activity_integration, content, name, error_id):
    response = upload_file(editor_client, tenant, activity_integration, content, name=name)
    page = response.content.decode()
    if error_id is None:  # Django's own form check comes first for an empty file
        assert "The submitted file is empty." in page
    else:
        assert response.status_code == 400 and f"<code>{error_id}</code>" in page
    assert Upload.objects.count() == 0


def test_the_form_shows_import_parse_json(editor_client, tenant, calls_integration):
    response = upload_file(editor_client, tenant, calls_integration, b'[{"email": "a@x.com",]', name="calls.json")
    assert response.status_code == 400 and "<code>import_parse_json</code>" in response.content.decode()


def test_a_viewer_cannot_upload(viewer_client, tenant, activity_integration):
    assert upload_file(viewer_client, tenant, activity_integration, GOOD_CSV).status_code == 403
    assert Upload.objects.count() == 0


def test_history_per_tenant_and_per_integration(editor_client, tenant, activity_integration, calls_integration, owner,
                                                django_capture_on_commit_callbacks, client):
    upload_file(editor_client, tenant, activity_integration, GOOD_CSV, capture=django_capture_on_commit_callbacks)
    token = services.regenerate_integration_token(calls_integration, owner)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/api/v1/data/calls/", data='[{"email": "a@x.com", "date": "8/16/2016", "calls": 1}]',
                    content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    web, api = Upload.objects.get(channel="web"), Upload.objects.get(channel="api")

    page = editor_client.get(url("upload_history", tenant)).content.decode()
    for expected in ["Web form", "eddie", "API", api.submitted_via, "Activity", "Calls", "Processed"]:
        assert expected in page
    assert token not in page
    only_calls = editor_client.get(url("integration_uploads", tenant, calls_integration.pk)).content.decode()
    assert f'href="{api.get_absolute_url()}"' in only_calls and f'href="{web.get_absolute_url()}"' not in only_calls


def test_another_tenant_sees_none_of_it(tenant, activity_integration, editor, outsider,
                                        django_capture_on_commit_callbacks):
    from django.test import Client

    ours, theirs = Client(), Client()
    ours.force_login(editor)
    theirs.force_login(outsider)
    upload_file(ours, tenant, activity_integration, GOOD_CSV, capture=django_capture_on_commit_callbacks)
    upload = Upload.objects.get()
    for name in ["upload_detail", "upload_status", "upload_errors_csv"]:
        assert theirs.get(url(name, tenant, upload.pk)).status_code == 404
        assert theirs.get(reverse(name, args=["globex", upload.pk])).status_code == 404
    assert theirs.post(reverse("upload_retry", args=["globex", upload.pk])).status_code == 404
    assert upload.get_absolute_url() not in theirs.get(reverse("upload_history", args=["globex"])).content.decode()
    assert "No uploads yet" in theirs.get(reverse("upload_history", args=["globex"])).content.decode()


@pytest.fixture
def halted(owner, tenant, activity_integration, editor_client, django_capture_on_commit_callbacks):
    """Out of Sandbox Mode: upload 1 fails processing (the Data Format changed meanwhile); upload 2 waits."""
    services.set_sandbox(activity_integration, owner, False)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        upload_file(editor_client, tenant, activity_integration, GOOD_CSV)
    services.update_integration(Integration.objects.get(pk=activity_integration.pk), owner,
                                {"field_keys": ["email", "date", "calls", "talk_minutes", "deals", "team"]})
    for callback in pending:
        callback()
    second_csv = b"email,date,calls,talk_minutes,deals,team\nann@x.com,8/17/2016,7,1,1,north\n"
    upload_file(editor_client, tenant, activity_integration, second_csv, name="second.csv",
                capture=django_capture_on_commit_callbacks)
    first, second = Upload.objects.order_by("id")
    assert (first.status, second.status) == ("failed", "waiting")
    return first, second


def test_a_failed_upload_halts_production_and_the_page_says_so(halted, editor_client, tenant, viewer):
    from django.test import Client

    first, second = halted
    page = editor_client.get(first.get_absolute_url()).content.decode()
    assert "the uploads that arrived after it wait" in page
    assert url("upload_retry", tenant, first.pk) in page and url("upload_skip", tenant, first.pk) in page
    assert "The field key &#x27;team&#x27; of the Data Format is missing from the file." in page
    assert "Waiting behind a failed upload" in editor_client.get(second.get_absolute_url()).content.decode()
    assert MetricValue.objects.count() == 0
    # A viewer sees the failure but no buttons, and cannot press them either.
    viewer_client = Client()
    viewer_client.force_login(viewer)
    assert url("upload_retry", tenant, first.pk) not in viewer_client.get(first.get_absolute_url()).content.decode()
    assert viewer_client.post(url("upload_skip", tenant, first.pk)).status_code == 403


def test_retry_processes_it_and_releases_the_rest(halted, editor_client, tenant, owner, activity_integration,
                                                  django_capture_on_commit_callbacks):
    first, second = halted
    services.update_integration(Integration.objects.get(pk=activity_integration.pk), owner,
                                {"field_keys": ["email", "date", "calls", "talk_minutes", "deals"]})
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(url("upload_retry", tenant, first.pk), follow=True)
    assert "is queued again" in response.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("processed", "processed")
    assert MetricValue.objects.filter(upload=second).count() == 3 and MetricValue.objects.count() == 9
    assert AuditEvent.objects.filter(action="upload.retried", actor_label="eddie", target=f"Upload #{first.pk}").exists()


def test_skip_releases_the_rest_and_is_audited(halted, editor_client, tenant, django_capture_on_commit_callbacks):
    first, second = halted
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post(url("upload_skip", tenant, first.pk))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("skipped", "processed")
    assert set(MetricValue.objects.values_list("upload", flat=True)) == {second.pk}
    assert AuditEvent.objects.filter(action="upload.skipped", target=f"Upload #{first.pk}").exists()
    # Skipped is final: no buttons, and a second press changes nothing.
    assert url("upload_skip", tenant, first.pk) not in editor_client.get(first.get_absolute_url()).content.decode()
    assert "Only a failed upload" in editor_client.post(url("upload_skip", tenant, first.pk), follow=True).content.decode()


def test_retry_and_skip_need_post(halted, editor_client, tenant):
    first, _ = halted
    assert editor_client.get(url("upload_retry", tenant, first.pk)).status_code == 405


def test_errors_download_as_csv(halted, editor_client, tenant):
    first, _ = halted
    response = editor_client.get(url("upload_errors_csv", tenant, first.pk))
    assert response["Content-Type"].startswith("text/csv")
    assert f"upload-{first.pk}-errors.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    # The file's own columns, and an error column; an error about the whole file has no row.
    assert rows == [["row", "email", "date", "calls", "talk_minutes", "deals", "errors"],
                    ["", "", "", "", "", "", "team: The field key 'team' of the Data Format is missing from the file."]]
    history = editor_client.get(url("upload_history", tenant)).content.decode()
    assert url("upload_errors_csv", tenant, first.pk) in history and "1 error" in history


def test_sandbox_upload_failures_show_no_buttons(editor_client, tenant, calls_integration, owner,
                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as pending:
        upload_file(editor_client, tenant, calls_integration,
                    json.dumps([{"email": "a@x.com", "date": "8/16/2016", "calls": 1}]).encode(), name="c.json")
    upload = Upload.objects.get()
    upload.file.storage.delete(upload.file.name)
    for callback in pending:
        callback()
    upload.refresh_from_db()
    assert upload.status == "failed"
    page = editor_client.get(upload.get_absolute_url()).content.decode()
    assert url("upload_retry", tenant, upload.pk) not in page



def test_the_form_refuses_a_file_over_15_mb(editor_client, tenant, activity_integration):
    response = upload_file(editor_client, tenant, activity_integration, b"x" * (15 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert "<code>import_too_large</code>" in response.content.decode()
    assert Upload.objects.count() == 0
