"""A real `celery -A portal worker` process picks up an upload posted through the front door."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from live_stack import wait_for

from integrations import services
from portal.celery import app as celery_app
from uploads import tasks
from uploads.intake import receive
from uploads.models import MetricValue, Upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_processes_an_upload(client, worker, tenant, owner, calls_integration, tmp_path):
    token = services.regenerate_integration_token(calls_integration, owner)
    records = '[{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"},' \
              ' {"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": 4}]'
    response = client.post("/api/v1/data/calls/", data=records, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 201, response.content
    upload_id = response.json()["id"]

    def processed():
        return Upload.objects.get(pk=upload_id).status == "processed"

    done = wait_for(processed)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert done, f"worker did not process the upload; status {Upload.objects.get(pk=upload_id).status}\n{log[-3000:]}"
    assert worker.poll() is None  # the worker is alive, not a one-shot
    upload = Upload.objects.get(pk=upload_id)
    assert upload.values_written == 1 and upload.started_at and upload.finished_at
    assert MetricValue.objects.get().value == 7.0
    assert token not in log


def test_a_real_worker_recovers_an_upload_whose_task_was_lost(broker, request, tenant, owner, calls_integration,
                                                              tmp_path):
    """The broker loses an upload's task; the periodic check, sent through the broker as beat
    sends it, finds the upload and has a real worker process it."""
    upload = receive(calls_integration, b'[{"email": "jason@yourcompany.com", "date": "8/16/2016",'
                           b' "calls": "3"}]', content_type="application/json", channel="api")
    assert celery_app.control.purge() == 1  # the message is lost before any worker takes it
    stale = timezone.now() - timedelta(seconds=django_settings.PORTAL_REQUEUE_AFTER_SECONDS + 5)
    Upload.objects.filter(pk=upload.pk).update(queued_at=stale)

    request.getfixturevalue("worker")  # a worker starts, finds nothing to do …
    tasks.requeue_stalled_uploads.delay()  # … until the periodic check comes

    done = wait_for(lambda: Upload.objects.get(pk=upload.pk).status == "processed")
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert done, f"status {Upload.objects.get(pk=upload.pk).status}\n{log[-3000:]}"
    assert "queued again" in log and MetricValue.objects.get().value == 3.0
