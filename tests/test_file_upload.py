"""Reference 003 inbound, the File Upload API: tokens (API Tokens page, at most 5 active), step 1
(a URL for one file), step 2 (the PUT, on the embedded default), what an arrival leaves (an
upload, an audit event, a notification on a page and by email) and the download."""

import hashlib
import io
import json
import os
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations import services
from integrations.models import ApiToken
from integrations.protocols.file_upload import tasks, tokens
from integrations.protocols.file_upload.models import FileSlot, Notification
from integrations.tokens import hash_token
from portal.models import AuditEvent
from uploads.models import Upload

pytestmark = pytest.mark.django_db

STEP_ONE = "/api/v1/file-upload/"
CSV = (b"email,date,calls,talk_minutes,deals\n"
       b"jason@yourcompany.com,8/16/2016,3,12.5,1\nann@yourcompany.com,8/16/2016,5,3,0\n")


@pytest.fixture
def token(tenant, owner):
    _, plaintext = tokens.issue(tenant, owner, "Nightly CRM export")
    return plaintext


def ask(client, token, filename="customers.csv", **extra):
    return client.post(STEP_ONE, json.dumps({"filename": filename}), content_type="application/json",
                       HTTP_AUTH_API_TOKEN=token, **extra)


def local(url):
    """The path and query of a URL the test client can request."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def put(client, url, body, **extra):
    """PUT as curl --upload-file does: the bytes, a Content-Length, no Content-Type."""
    return client.generic("PUT", local(url), body, content_type="", **extra)


@pytest.fixture
def send(client, django_capture_on_commit_callbacks):
    """Both steps for one file; what the commit queues (processing, the email) runs."""

    def send(token, body, filename="customers.csv"):
        answer = ask(client, token, filename)
        assert answer.status_code == 200, answer.content
        with django_capture_on_commit_callbacks(execute=True):
            response = put(client, answer.json()["url"], body)
        return answer, response

    return send


class Reader(io.RawIOBase):
    """A request body that counts what was read of it, and may break off after `breaks_after` bytes."""

    def __init__(self, data, breaks_after=None, error=None):
        self.data, self.breaks_after, self.error, self.read_bytes = data, breaks_after, error, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        end = len(self.data) if self.breaks_after is None else self.breaks_after
        if self.read_bytes >= end:
            if self.error:
                raise self.error
            return 0
        chunk = self.data[self.read_bytes:min(end, self.read_bytes + len(buffer))]
        buffer[:len(chunk)] = chunk
        self.read_bytes += len(chunk)
        return len(chunk)


def stored_files(settings):
    media = settings.MEDIA_ROOT
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()) if media.exists() else []


# --- Tokens -----------------------------------------------------------------------------------


def test_api_tokens_page_issues_a_token_shown_once_and_stored_as_a_hash(owner_client, tenant):
    page = owner_client.get(reverse("integration_api_tokens", args=[tenant.slug]))
    assert page.status_code == 200 and b"New API Token" in page.content
    response = owner_client.post(reverse("integration_api_token_new", args=[tenant.slug]), {"name": "CRM export"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    row = ApiToken.objects.get(tenant=tenant, kind=ApiToken.Kind.FILE_UPLOAD)
    plaintext = response.context["token"]
    assert plaintext.encode() in response.content and row.name == "CRM export"
    assert row.token_hash == hash_token(plaintext) and plaintext not in json.dumps(list(ApiToken.objects.values()),
                                                                                   default=str)
    listed = owner_client.get(reverse("integration_api_tokens", args=[tenant.slug])).content.decode()
    assert plaintext not in listed and row.masked in listed
    # The page shows the seed's two curl lines with this portal's URL of step 1.
    assert "http://testserver/api/v1/file-upload/" in listed and "--upload-file" in listed and "jq -r .url" in listed
    # Issuing the first token made the integration files go to, with its Credentials tab linking back.
    integration = tenant.integrations.get(protocol="file_upload")
    tab = owner_client.get(reverse("integration_credentials", args=[tenant.slug, integration.pk])).content.decode()
    assert reverse("integration_api_tokens", args=[tenant.slug]) in tab
    assert "http://testserver/api/v1/file-upload/" in tab


def test_at_most_five_active_tokens_and_the_sixth_says_to_revoke_one(owner_client, tenant, owner):
    for n in range(5):
        tokens.issue(tenant, owner, f"token {n}")
    response = owner_client.post(reverse("integration_api_token_new", args=[tenant.slug]), {"name": "sixth"})
    assert response.status_code == 200 and "revoke one" in response.content.decode()
    assert ApiToken.objects.filter(kind=ApiToken.Kind.FILE_UPLOAD).count() == 5
    assert ApiToken.objects.filter(kind=ApiToken.Kind.FILE_UPLOAD).active().count() == 5  # none revoked silently
    # Standard API tokens do not count.
    services.issue_api_token(tenant, owner, "standard")
    first = ApiToken.objects.filter(kind=ApiToken.Kind.FILE_UPLOAD).earliest("created_at")
    owner_client.post(reverse("integration_api_token_revoke", args=[tenant.slug, first.pk]))
    response = owner_client.post(reverse("integration_api_token_new", args=[tenant.slug]), {"name": "sixth"})
    assert response.context["token"] and ApiToken.objects.filter(kind="file_upload").active().count() == 5


@pytest.mark.django_db(transaction=True)
def test_two_creations_at_once_cannot_make_a_sixth(tenant, owner):
    for n in range(4):
        tokens.issue(tenant, owner, f"token {n}")
    barrier, outcomes = threading.Barrier(2), []

    def create(name):
        try:
            barrier.wait(timeout=10)
            tokens.issue(tenant, owner, name)
            outcomes.append("issued")
        except ValidationError as exc:
            outcomes.append(" ".join(exc.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(f"racer {n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("issued") == 1 and len(outcomes) == 2
    assert "revoke one first" in next(outcome for outcome in outcomes if outcome != "issued")
    assert ApiToken.objects.filter(tenant=tenant, kind=ApiToken.Kind.FILE_UPLOAD).active().count() == 5


def test_viewers_see_tokens_but_cannot_issue_or_revoke(viewer_client, tenant, token):
    assert viewer_client.get(reverse("integration_api_tokens", args=[tenant.slug])).status_code == 200
    created = viewer_client.post(reverse("integration_api_token_new", args=[tenant.slug]), {"name": "x"})
    assert created.status_code == 403
    row = ApiToken.objects.get(kind=ApiToken.Kind.FILE_UPLOAD)
    assert viewer_client.post(reverse("integration_api_token_revoke", args=[tenant.slug, row.pk])).status_code == 403
    assert ApiToken.objects.get(pk=row.pk).is_active


def test_another_tenants_token_is_not_found(outsider_client, tenant, token):
    row = ApiToken.objects.get(kind=ApiToken.Kind.FILE_UPLOAD)
    response = outsider_client.post(reverse("integration_api_token_revoke", args=["globex", row.pk]))
    assert response.status_code == 404 and ApiToken.objects.get(pk=row.pk).is_active


# --- Step 1 -----------------------------------------------------------------------------------


def test_step_one_answers_an_id_and_a_url_for_the_base_name(client, token):
    response = ask(client, token, filename="../../reports/2024\\March customers.csv")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"id", "url"} and isinstance(data["id"], int)
    slot = FileSlot.objects.get(pk=data["id"])
    assert slot.filename == "March customers.csv" and slot.content_type == "text/csv"
    # The path ends with the file's name (as an S3 key does): curl --upload-file adds none of its own.
    assert data["url"].startswith(f"http://testserver/api/v1/file-upload/{slot.pk}/March_customers.csv?expires=")
    # Never \u0026 for &: the URL is in the raw answer exactly as it is to be used.
    raw = response.content.decode()
    assert "\\u0026" not in raw and "&signature=" in raw and f'"url": "{data["url"]}"' in raw
    assert ApiToken.objects.get(kind=ApiToken.Kind.FILE_UPLOAD).last_used_at is not None


@pytest.mark.parametrize("headers, status, error_id", [
    ({}, 401, "authentication_failed"),
    ({"HTTP_AUTH_API_TOKEN": "deadbeef.not-a-token"}, 401, "authentication_failed"),
])
def test_step_one_needs_a_file_upload_token(client, headers, status, error_id):
    response = client.post(STEP_ONE, json.dumps({"filename": "a.csv"}), content_type="application/json", **headers)
    assert response.status_code == status and response.json()["errors"][0]["id"] == error_id
    assert response["WWW-Authenticate"] == "Auth-Api-Token" and not FileSlot.objects.exists()


def test_step_one_refuses_standard_and_revoked_tokens(client, tenant, owner, api_token, token, owner_client):
    assert ask(client, api_token).status_code == 401  # a Standard API token is not a File Upload API token
    row = ApiToken.objects.get(kind=ApiToken.Kind.FILE_UPLOAD)
    owner_client.post(reverse("integration_api_token_revoke", args=[tenant.slug, row.pk]))
    assert ask(client, token).status_code == 401 and not FileSlot.objects.exists()


@pytest.mark.parametrize("body, error_id", [
    (b"", "request_malformed"), (b"not json", "request_malformed"), (b"[1]", "filename_required"),
    (b'{"filename": ""}', "filename_required"), (b'{"filename": 3}', "filename_required"),
    (b'{"filename": "dir/.."}', "filename_invalid"), (b'{"name": "a.csv"}', "filename_required"),
])
def test_step_one_refuses_what_names_no_file(client, token, body, error_id):
    response = client.post(STEP_ONE, body, content_type="application/json", HTTP_AUTH_API_TOKEN=token)
    assert response.status_code == 400 and response.json()["errors"][0]["id"] == error_id
    assert not FileSlot.objects.exists()


def test_step_one_without_trailing_slash_and_with_other_methods(client, token):
    assert client.post(STEP_ONE.rstrip("/"), json.dumps({"filename": "a.csv"}), content_type="application/json",
                       HTTP_AUTH_API_TOKEN=token).status_code == 200
    response = client.get(STEP_ONE, HTTP_AUTH_API_TOKEN=token)
    assert response.status_code == 405 and response["Allow"] == "POST"


# --- Step 2 and the arrival -------------------------------------------------------------------


def test_put_stores_the_file_and_records_its_arrival(send, tenant, owner, editor, viewer, settings):
    answer, response = send(token := tokens.issue(tenant, owner, "Nightly CRM export")[1], CSV)
    assert response.status_code == 200, response.content
    upload = Upload.objects.get()
    assert response.json() == {"id": answer.json()["id"], "filename": "customers.csv", "size": len(CSV),
                                "sha256": hashlib.sha256(CSV).hexdigest()}
    assert upload.channel == Upload.Channel.PRESIGNED and upload.integration.protocol == "file_upload"
    assert upload.size_bytes == len(CSV) and upload.sha256 == hashlib.sha256(CSV).hexdigest()
    assert "Nightly CRM export" in upload.submitted_via and token not in upload.submitted_via
    assert upload.status == Upload.Status.PROCESSED and "linked to no data integration" in upload.message
    with upload.file.open("rb") as stored:
        assert stored.read() == CSV
    assert stored_files(settings) == [upload.file.name]  # nothing else: no temporary file left
    event = AuditEvent.objects.get(action="file.received")
    assert event.actor_label == "API token 'Nightly CRM export'" and event.detail["sha256"] == upload.sha256
    notification = Notification.objects.get()
    assert notification.upload == upload and notification.emailed_to == 2
    # The tenant's admins (owner, editors) are emailed; viewers are not.
    [email] = mail.outbox
    assert sorted(email.to) == sorted([owner.email, editor.email]) and "customers.csv" in email.subject
    assert upload.sha256 in email.body and f"/t/{tenant.slug}/uploads/{upload.pk}/" in email.body
    assert FileSlot.objects.get().status == FileSlot.Status.RECEIVED


def test_the_activity_page_and_the_admin_name_the_protocols_own_actions(send, token, owner_client, admin_client, tenant):
    send(token, CSV)
    page = owner_client.get(reverse("activity", args=[tenant.slug])).content.decode()
    assert "File received" in page and "File Upload API token linked" in page  # in the filter too
    assert "file.received" not in page.replace('value="file.received"', "")
    filtered = owner_client.get(reverse("activity", args=[tenant.slug]), {"action": "file.received"})
    assert "customers.csv" in filtered.content.decode()
    listed = admin_client.get(reverse("admin:portal_auditevent_changelist")).content.decode()
    assert "File received" in listed and "?action=file.received" in listed  # and in its filter
    only = admin_client.get(reverse("admin:portal_auditevent_changelist"), {"action": "file.received"})
    assert "customers.csv" in only.content.decode() and "1 audit event" in only.content.decode()


def test_a_second_put_to_the_same_url_is_refused(send, client, token):
    answer, _ = send(token, CSV)
    again = put(client, answer.json()["url"], b"something else")
    assert again.status_code == 409 and again.json()["errors"][0]["id"] == "url_used"
    upload = Upload.objects.get()
    with upload.file.open("rb") as stored:
        assert stored.read() == CSV


@pytest.mark.parametrize("change", ["signature", "expires", "id", "name", "no signature"])
def test_a_tampered_url_gets_403_and_stores_nothing(client, token, change, settings):
    url = ask(client, token).json()["url"]
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    path = parts.path
    if change == "signature":
        query["signature"] = query["signature"][:-1] + ("A" if query["signature"][-1] != "A" else "B")
    elif change == "expires":
        query["expires"] = str(int(query["expires"]) + 3600)
    elif change == "id":
        other = ask(client, token, "customers.csv").json()["id"]
        path = reverse("file_upload_put", args=[other, "customers.csv"])
    elif change == "name":
        path = path.replace("customers.csv", "other.csv")
    else:
        del query["signature"]
    response = client.generic("PUT", f"{path}?{urlencode(query)}", CSV, content_type="")
    assert response.status_code == 403 and response.json()["errors"][0]["id"] == "signature_mismatch"
    assert not Upload.objects.exists() and stored_files(settings) == []


def test_an_expired_url_gets_403_and_stores_nothing(client, token, settings):
    url = ask(client, token).json()["url"]
    with time_machine.travel(FileSlot.objects.get().expires_at, tick=False):
        response = put(client, url, CSV)
    assert response.status_code == 403 and response.json()["errors"][0]["id"] == "url_expired"
    assert not Upload.objects.exists() and stored_files(settings) == []


def test_a_url_of_a_revoked_token_stops_working(client, tenant, owner, token, settings):
    url = ask(client, token).json()["url"]
    services.revoke_api_token(ApiToken.objects.get(kind=ApiToken.Kind.FILE_UPLOAD), owner)
    response = put(client, url, CSV)
    assert response.status_code == 403 and response.json()["errors"][0]["id"] == "token_revoked"
    assert not Upload.objects.exists() and stored_files(settings) == []


def test_over_five_gb_is_refused_by_its_content_length_before_anything_is_read(client, token, settings):
    url = ask(client, token).json()["url"]
    body = Reader(b"x" * 1024)
    response = client.generic("PUT", local(url), content_type="", CONTENT_LENGTH=str(5 * 1024 ** 3 + 1),
                              **{"wsgi.input": body})
    assert response.status_code == 413 and response.json()["errors"][0]["id"] == "file_too_large"
    assert "5,368,709,120 bytes at most" in response.json()["errors"][0]["description"]
    assert body.read_bytes == 0 and not Upload.objects.exists() and stored_files(settings) == []
    assert FileSlot.objects.get().status == FileSlot.Status.WAITING  # the URL still works for a smaller file


def test_a_put_without_content_length_is_refused(client, token):
    url = ask(client, token).json()["url"]
    response = client.generic("PUT", local(url), content_type="", CONTENT_LENGTH="",
                              HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": Reader(CSV)})
    assert response.status_code == 411 and not Upload.objects.exists()


@pytest.mark.parametrize("error", [None, ConnectionResetError("Connection reset by peer")])
def test_an_interrupted_put_leaves_no_file_and_the_url_works_again(client, token, settings, error, send):
    url = ask(client, token).json()["url"]
    body = Reader(CSV, breaks_after=40, error=error)
    response = client.generic("PUT", local(url), content_type="", CONTENT_LENGTH=str(len(CSV)),
                              **{"wsgi.input": body})
    assert response.status_code == 400 and response.json()["errors"][0]["id"] == "request_incomplete"
    assert body.read_bytes == 40
    assert not Upload.objects.exists() and stored_files(settings) == [] and not Notification.objects.exists()
    assert FileSlot.objects.get().status == FileSlot.Status.WAITING
    assert put(client, url, CSV).status_code == 200 and Upload.objects.get().size_bytes == len(CSV)


def test_other_methods_on_the_url(client, token):
    url = ask(client, token).json()["url"]
    response = client.get(local(url))
    assert response.status_code == 405 and response["Allow"] == "PUT"


# --- Downloads and pages ----------------------------------------------------------------------


def test_editors_download_the_file_streamed(send, token, editor_client, tenant):
    send(token, CSV)
    upload = Upload.objects.get()
    response = editor_client.get(reverse("upload_download", args=[tenant.slug, upload.pk]))
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content) == CSV
    assert 'attachment; filename="customers.csv"' in response["Content-Disposition"]


def test_viewers_and_other_tenants_cannot_download(send, token, viewer, outsider, tenant):
    send(token, CSV)
    upload = Upload.objects.get()
    viewer_client, outsider_client = Client(), Client()
    viewer_client.force_login(viewer)
    outsider_client.force_login(outsider)
    assert viewer_client.get(reverse("upload_download", args=[tenant.slug, upload.pk])).status_code == 403
    assert outsider_client.get(reverse("upload_download", args=["globex", upload.pk])).status_code == 404
    assert outsider_client.get(reverse("upload_download", args=[tenant.slug, upload.pk])).status_code == 404


def test_files_received_tab_lists_the_notifications(send, token, owner_client, tenant, outsider):
    send(token, CSV, filename="march.csv")
    upload = Upload.objects.get()
    page = owner_client.get(reverse("file_upload_files", args=[tenant.slug, upload.integration_id])).content.decode()
    assert "march.csv" in page and reverse("upload_download", args=[tenant.slug, upload.pk]) in page
    assert "Nightly CRM export" in page
    outsider_client = Client()
    outsider_client.force_login(outsider)
    assert outsider_client.get(reverse("file_upload_files", args=["globex", upload.integration_id])).status_code == 404
    tokens_page = owner_client.get(reverse("integration_api_tokens", args=[tenant.slug])).content.decode()
    assert "march.csv" in tokens_page  # the latest files, on the API Tokens page too


def test_disabled_integration_refuses_step_one(client, token, tenant, owner):
    integration = tenant.integrations.get(protocol="file_upload")
    services.update_integration(integration, owner, {"enabled": False})
    response = ask(client, token)
    assert response.status_code == 403 and response.json()["errors"][0]["id"] == "integration_disabled"


# --- The demo and the admin -------------------------------------------------------------------


def run_demo(*args):
    out = io.StringIO()
    call_command("demo", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_demo_gives_a_fresh_token_linked_to_the_activity_integration(client, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    first = run_demo("--base-url", "http://127.0.0.1:8000")
    second = run_demo("--base-url", "http://127.0.0.1:8000")
    entry = next(item for item in second["integrations"] if item["protocol"] == "file_upload")
    assert entry["direction"] == "inbound" and entry["name"] == "File Upload API"
    assert entry["request_url"] == "http://127.0.0.1:8000/api/v1/file-upload/" and entry["process_into"] == "activity"
    old = next(item for item in first["integrations"] if item["protocol"] == "file_upload")["api_token"]
    assert entry["api_token"] != old and ApiToken.objects.find(old) is None
    row = ApiToken.objects.find(entry["api_token"])
    assert row.kind == ApiToken.Kind.FILE_UPLOAD and row.file_upload_link.integration.key == "activity"
    assert ApiToken.objects.find(second["api_token"]).is_active  # the demo's Standard token is another one
    assert ask(client, entry["api_token"]).status_code == 200


def test_admin_pages_show_no_secret(admin_client, send, token):
    send(token, CSV)
    for path in ["/admin/file_upload/fileslot/", f"/admin/file_upload/fileslot/{FileSlot.objects.get().pk}/change/",
                 "/admin/file_upload/notification/", "/admin/file_upload/tokenlink/"]:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert token not in response.content.decode()


def test_the_periodic_check_expires_unused_urls_and_deletes_files_of_killed_puts(client, token, settings):
    ask(client, token)
    fresh = ask(client, token).json()["id"]
    FileSlot.objects.exclude(pk=fresh).update(expires_at=timezone.now() - timedelta(seconds=1))
    incoming = settings.MEDIA_ROOT / "file-upload-incoming"
    incoming.mkdir(parents=True)
    left, live = incoming / "1-0123456789abcdef.part", incoming / "2-fedcba9876543210.part"
    left.write_bytes(b"half a file")
    live.write_bytes(b"being written")
    old = time.time() - 16 * 60  # not written to for longer than a live PUT ever pauses
    os.utime(left, (old, old))
    assert tasks.check_files() == {"arrived": [], "expired": 1, "partial_files_deleted": 1}
    assert not left.exists() and live.exists()
    assert sorted(FileSlot.objects.values_list("status", flat=True)) == ["expired", "waiting"]
