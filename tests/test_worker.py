"""A real `celery -A portal worker` process picks up an upload posted through the front door."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection

from integrations import services
from portal.celery import app as celery_app
from uploads.models import MetricValue, Upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(django_settings.BASE_DIR)


def worker_database_url():
    """The URL of the database this test runs on, for the worker to use the same one."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def reconnect():
    """Forget the broker connections made so far, so the next send uses the broker configured now."""
    from kombu import pools

    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path):
    """The environment's broker if it names one, else a filesystem broker in a folder of this test's own."""
    saved = celery_app.conf.broker_url, dict(celery_app.conf.broker_transport_options or {})
    env = {}
    if os.environ.get("CELERY_BROKER_URL"):
        env["CELERY_BROKER_URL"] = os.environ["CELERY_BROKER_URL"]
    else:
        folder = tmp_path / "broker"
        folder.mkdir()
        env.update(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_FOLDER=str(folder))
        celery_app.conf.broker_url = "filesystem://"
        celery_app.conf.broker_transport_options = {
            "data_folder_in": str(folder), "data_folder_out": str(folder), "processed_folder": str(folder),
            "store_processed": False}
    reconnect()
    celery_app.conf.task_always_eager = False
    yield env
    celery_app.conf.task_always_eager = True
    celery_app.conf.broker_url, celery_app.conf.broker_transport_options = saved
    reconnect()


@pytest.fixture
def worker(broker, settings, tmp_path):
    env = {**os.environ, **broker, "DATABASE_URL": worker_database_url(), "MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "CELERY_TASK_ALWAYS_EAGER": "false", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=solo", "--loglevel=INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"test-{os.getpid()}@%h"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log.close()
    process.log = (tmp_path / "worker.log").read_text(errors="replace")


def wait_for(condition, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


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
    from datetime import timedelta

    from django.utils import timezone

    from uploads import tasks
    from uploads.intake import receive

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
