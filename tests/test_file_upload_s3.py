"""With PORTAL_S3_BUCKET, step 1 answers an S3 presigned PUT (SigV4) and the periodic check
records the files that arrived. Against moto's S3 in server mode on 127.0.0.1 (no network).

moto does not check what S3 checks at the door: a presigned URL's signature and its expiry (a
tampered or expired URL is accepted by moto, refused 403 by S3), nor S3's 5 GB limit for one
PUT. Those are S3's to enforce; these tests cover the portal's part: the URL it signs, what it
records, and what it does with a file it must not keep. And the intake's large bodies, which
wait in a temporary file and are then stored in S3 whole.
"""

import hashlib
import io
import json
import os
import socket
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from moto.server import ThreadedMotoServer

from integrations import services
from integrations.models import ApiToken
from integrations.protocols.file_upload import s3, tasks, tokens
from integrations.protocols.file_upload.models import FileSlot, Notification
from uploads import intake
from uploads.models import MetricValue, Upload

pytestmark = pytest.mark.django_db

BUCKET = "portal-files"
CSV = b"email,date,calls,talk_minutes,deals\njason@yourcompany.com,8/16/2016,3,12.5,1\n"


@pytest.fixture
def bucket(settings):
    """moto's S3 on a free port of 127.0.0.1, and the portal's storage on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=30)  # moto keeps one store per process
    keys = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}
    settings.S3_BUCKET = BUCKET
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": BUCKET, "endpoint_url": endpoint, "file_overwrite": False, **keys}}}
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


@pytest.fixture
def token(tenant, owner):
    return tokens.issue(tenant, owner, "Warehouse export")[1]


def ask(client, token, filename="customers.csv"):
    response = client.post("/api/v1/file-upload/", json.dumps({"filename": filename}),
                           content_type="application/json", HTTP_AUTH_API_TOKEN=token)
    assert response.status_code == 200, response.content
    return response.json()


def keys(bucket):
    return sorted(item["Key"] for item in bucket.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def check(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return tasks.check_files()


def test_step_one_answers_a_sigv4_presigned_put(client, bucket, token):
    answer = ask(client, token, "reports/March customers.csv")
    url = answer["url"]
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["3600"]
    assert "X-Amz-Signature" in query and query["X-Amz-SignedHeaders"] == ["host"]
    slot = FileSlot.objects.get(pk=answer["id"])
    assert urlsplit(url).path == f"/{BUCKET}/{slot.storage_key}" and slot.filename == "March customers.csv"
    assert "\\u0026" not in json.dumps(answer) and "&X-Amz-Signature=" in url


def test_a_file_put_to_s3_is_recorded_by_the_periodic_check(client, bucket, token, owner,
                                                            django_capture_on_commit_callbacks):
    answer = ask(client, token)
    assert check(django_capture_on_commit_callbacks)["arrived"] == []  # nothing yet
    assert requests.put(answer["url"], data=CSV, timeout=30).status_code == 200  # as curl --upload-file does
    assert check(django_capture_on_commit_callbacks)["arrived"] == [Upload.objects.get().pk]
    upload = Upload.objects.get()
    assert upload.channel == Upload.Channel.PRESIGNED and upload.size_bytes == len(CSV)
    assert upload.sha256 == hashlib.sha256(CSV).hexdigest() and "Warehouse export" in upload.submitted_via
    # Moved to the upload's own key; nothing left at the incoming one.
    assert keys(bucket) == [upload.file.name] and upload.file.name.startswith(f"uploads/{upload.tenant_id}/")
    assert bucket.get_object(Bucket=BUCKET, Key=upload.file.name)["Body"].read() == CSV
    assert Notification.objects.get().upload == upload and mail.outbox[0].to == [owner.email]
    assert FileSlot.objects.get().status == FileSlot.Status.RECEIVED
    assert check(django_capture_on_commit_callbacks)["arrived"] == []  # recorded once


def test_a_second_put_to_the_same_url_is_deleted(client, bucket, token, django_capture_on_commit_callbacks):
    answer = ask(client, token)
    requests.put(answer["url"], data=CSV, timeout=30)
    check(django_capture_on_commit_callbacks)
    requests.put(answer["url"], data=b"something else", timeout=30)  # S3 takes it until the URL expires …
    check(django_capture_on_commit_callbacks)  # … and the portal deletes it
    upload = Upload.objects.get()
    assert keys(bucket) == sorted(stored.name for stored in upload.stored_files)  # the file, its summary
    assert bucket.get_object(Bucket=BUCKET, Key=upload.file.name)["Body"].read() == CSV


def test_a_file_of_a_revoked_token_is_deleted_not_recorded(client, bucket, token, owner,
                                                          django_capture_on_commit_callbacks):
    answer = ask(client, token)
    requests.put(answer["url"], data=CSV, timeout=30)
    services.revoke_api_token(ApiToken.objects.get(kind=ApiToken.Kind.FILE_UPLOAD), owner)
    check(django_capture_on_commit_callbacks)
    assert not Upload.objects.exists() and keys(bucket) == []
    slot = FileSlot.objects.get()
    assert slot.status == FileSlot.Status.REFUSED and "revoked" in slot.message


def test_urls_never_used_expire(client, bucket, token, django_capture_on_commit_callbacks):
    ask(client, token)
    slot = FileSlot.objects.get()
    # A PUT begun before the URL expired may end after: it is looked for as long again.
    FileSlot.objects.filter(pk=slot.pk).update(expires_at=timezone.now() - timedelta(minutes=30))
    check(django_capture_on_commit_callbacks)
    assert FileSlot.objects.get().status == FileSlot.Status.WAITING
    FileSlot.objects.filter(pk=slot.pk).update(expires_at=timezone.now() - timedelta(hours=2))
    assert check(django_capture_on_commit_callbacks)["expired"] == 1
    assert FileSlot.objects.get().status == FileSlot.Status.EXPIRED


def test_a_linked_file_is_processed_from_s3(client, bucket, tenant, owner, activity_integration,
                                            django_capture_on_commit_callbacks):
    _, token = tokens.issue(tenant, owner, "Activity feed", activity_integration)
    requests.put(ask(client, token)["url"], data=CSV, timeout=30)
    check(django_capture_on_commit_callbacks)
    upload = Upload.objects.get()
    assert upload.status == Upload.Status.PROCESSED, upload.errors
    assert MetricValue.objects.filter(integration=activity_integration).count() == 3


def test_editors_download_through_a_short_lived_url(client, bucket, token, editor_client, tenant,
                                                    django_capture_on_commit_callbacks):
    requests.put(ask(client, token)["url"], data=CSV, timeout=30)
    check(django_capture_on_commit_callbacks)
    upload = Upload.objects.get()
    response = editor_client.get(reverse("upload_download", args=[tenant.slug, upload.pk]))
    assert response.status_code == 302
    fetched = requests.get(response["Location"], timeout=30)
    assert fetched.content == CSV and "customers.csv" in fetched.headers["Content-Disposition"]


def test_the_embedded_put_is_not_offered_with_s3(client, bucket, token):
    answer = ask(client, token)
    assert not answer["url"].startswith("http://testserver") and s3.enabled()


def test_a_large_body_goes_to_s3_whole_and_leaves_no_temporary_file(bucket, activity_integration, settings):
    lines = ["email,date,calls,talk_minutes,deals"] + [f"u{i % 300}@x.com,8/{i % 28 + 1}/2016,{i % 9},{i % 60},1"
                                                       for i in range(60_000)]
    body = ("\n".join(lines) + "\n").encode()
    assert len(body) > intake.SPOOL_IN_MEMORY_BYTES  # spooled to a temporary file, then sent to S3
    upload = intake.receive(activity_integration, io.BytesIO(body), channel="api", content_type="text/csv")
    assert keys(bucket) == sorted(stored.name for stored in upload.stored_files)  # the file, its summary
    stored = bucket.get_object(Bucket=BUCKET, Key=upload.file.name)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == upload.sha256 == hashlib.sha256(body).hexdigest()
    assert os.listdir(settings.FILE_UPLOAD_TEMP_DIR) == []
