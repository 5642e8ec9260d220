"""Work whose task was lost is sent again: an upload queued or processing for too long, a
dispatch waiting past its next attempt or held by a dead worker. Sending again never counts
twice. (In these tests an upload's task is "lost" simply because nothing ran it: the
test's transaction never commits, so the on-commit send never happens.)"""

import json
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from integrations import services
from uploads.models import CallLog, Dispatch
from uploads.delivery.dispatch import attempt_lease_seconds
from uploads.tasks import requeue_stalled_dispatches
from portal.celery import app as celery_app
from uploads.intake import receive
from uploads.models import MetricValue, Upload
from uploads.processing import process_upload, requeue_stalled_uploads

pytestmark = pytest.mark.django_db

ROWS = json.dumps([{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"},
                   {"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "4"}]).encode()
PATH = "/api/v1/data/calls/"


def long_ago():
    return timezone.now() - timedelta(seconds=django_settings.PORTAL_REQUEUE_AFTER_SECONDS + 5)


def test_an_upload_whose_task_was_lost_is_processed_once_it_is_old(live_calls):
    upload = receive(live_calls, ROWS, content_type="application/json", channel="api")
    assert upload.status == Upload.Status.QUEUED and upload.queued_at

    assert requeue_stalled_uploads() == []  # just queued: its task may simply not have run yet
    Upload.objects.filter(pk=upload.pk).update(queued_at=long_ago())
    assert requeue_stalled_uploads() == [upload.pk]

    upload.refresh_from_db()
    assert upload.status == Upload.Status.PROCESSED and upload.values_written == 1
    assert MetricValue.objects.get().value == 7.0
    assert requeue_stalled_uploads() == []


def test_an_upload_left_processing_by_a_dead_worker_is_processed_again_without_doubling(live_calls):
    upload = receive(live_calls, ROWS, content_type="application/json", channel="api")
    process_upload(upload.pk)  # processed once …
    # … then, as if a worker had died after claiming it again (a duplicated task):
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.PROCESSING, started_at=long_ago())

    assert requeue_stalled_uploads() == [upload.pk]
    upload.refresh_from_db()
    assert upload.status == Upload.Status.PROCESSED
    assert MetricValue.objects.count() == 1 and MetricValue.objects.get().value == 7.0  # replaced, not added


def test_a_stalled_upload_blocking_later_ones_releases_them(live_calls, django_capture_on_commit_callbacks):
    first = receive(live_calls, ROWS, content_type="application/json", channel="api")
    second = receive(live_calls, ROWS, content_type="application/json", channel="api")
    process_upload(second.pk)  # its task ran; the first one's was lost
    assert Upload.objects.get(pk=second.pk).status == Upload.Status.WAITING

    Upload.objects.filter(pk=first.pk).update(queued_at=long_ago())
    with django_capture_on_commit_callbacks(execute=True):  # processing releases the others on commit
        assert requeue_stalled_uploads() == [first.pk]
    assert set(Upload.objects.values_list("status", flat=True)) == {Upload.Status.PROCESSED}


def test_a_backlog_of_stalled_uploads_costs_one_task_per_integration(live_calls, tenant, owner):
    other = services.create_integration(
        tenant, owner, name="Other calls", data_type="other_calls", data_format="json",
        field_keys=["email", "date", "calls"], user_key="email", date_key="date", date_format="M/D/YYYY",
        metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
    services.set_sandbox(other, owner, False)
    backlog = [receive(live_calls, ROWS, content_type="application/json", channel="api") for _ in range(3)]
    elsewhere = receive(other, ROWS, content_type="application/json", channel="api")
    Upload.objects.update(queued_at=long_ago())  # none of their tasks ran

    assert requeue_stalled_uploads() == [backlog[0].pk, elsewhere.pk]
    assert set(Upload.objects.values_list("status", flat=True)) == {Upload.Status.PROCESSED}
    assert requeue_stalled_uploads() == []


@pytest.fixture
def vendor(tenant, owner, httpserver, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    integration = services.create_integration(
        tenant, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=httpserver.url_for(PATH),
        credentials={"auth_token": "vendor-Secret-7f3c9a1be24d"},
    )
    services.set_sandbox(integration, owner, False)
    httpserver.expect_request(PATH, method="POST").respond_with_json({"id": 1}, status=201)
    return integration


def test_a_dispatch_whose_first_task_was_lost_is_sent_once_it_is_old(vendor, httpserver):
    upload = receive(vendor, ROWS, content_type="application/json", channel="api")
    dispatch = Dispatch.objects.get(upload=upload)

    assert requeue_stalled_dispatches() == []
    Dispatch.objects.filter(pk=dispatch.pk).update(created_at=long_ago())
    assert requeue_stalled_dispatches() == [dispatch.pk]

    upload.refresh_from_db()
    assert upload.status == Upload.Status.DELIVERED and len(httpserver.log) == 1
    assert requeue_stalled_dispatches() == []


def test_a_lost_retry_and_an_abandoned_attempt_are_sent_again(vendor, httpserver):
    retry = Dispatch.objects.get(upload=receive(vendor, ROWS, content_type="application/json", channel="api"))
    Dispatch.objects.filter(pk=retry.pk).update(attempts=1, next_attempt_at=long_ago())  # its countdown task was lost
    abandoned = Dispatch.objects.get(upload=receive(vendor, ROWS, content_type="application/json", channel="api"))
    Dispatch.objects.filter(pk=abandoned.pk).update(  # its worker died mid-attempt
        status=Dispatch.Status.SENDING, attempts=1,
        claimed_at=timezone.now() - timedelta(seconds=attempt_lease_seconds() + 1))
    fresh = Dispatch.objects.get(upload=receive(vendor, ROWS, content_type="application/json", channel="api"))

    assert requeue_stalled_dispatches() == sorted([retry.pk, abandoned.pk])

    retry.refresh_from_db()
    abandoned.refresh_from_db()
    assert (retry.status, retry.attempts) == (Dispatch.Status.DELIVERED, 2)
    assert (abandoned.status, abandoned.attempts) == (Dispatch.Status.DELIVERED, 1)
    assert Dispatch.objects.get(pk=fresh.pk).status == Dispatch.Status.WAITING
    assert len(httpserver.log) == 2 and CallLog.objects.count() == 2


def test_the_checks_are_scheduled_as_registered_tasks():
    celery_app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"uploads.tasks.requeue_stalled_uploads", "uploads.tasks.requeue_stalled_dispatches"} <= scheduled
    assert scheduled <= set(celery_app.tasks)  # every periodic check names a task that exists
