"""A database that cannot do it now (another transaction holds what processing needs, a restart
drops the connection) is not the upload's fault: nothing of the batch is written, the task runs
again later, and only after its last try does the upload fail, saying why. The errors here are
the database's own: a lock held by another connection, a backend terminated by the server."""

from contextlib import contextmanager

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from integrations import services
from live_stack import wait_for
from portal.celery import app as celery_app
from portal.db import DATABASE_BUSY
from uploads import processing, tasks
from uploads.intake import receive
from uploads.models import Dispatch, MetricValue, Upload

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = (b'[{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"},'
        b' {"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "4"}]')


def _wait_briefly(sender, connection, **kwargs):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET lock_timeout = '200ms'")
        else:
            cursor.execute("PRAGMA busy_timeout = 200")


@pytest.fixture
def impatient():
    """This process's connections give up waiting for a lock after 0.2 s (a failed try closes its
    connection, so the setting goes with every new one)."""
    connection.close()
    connection_created.connect(_wait_briefly)
    yield
    connection_created.disconnect(_wait_briefly)
    connection.close()


@contextmanager
def held_elsewhere(row):
    """What the work needs, held by another connection's open transaction: on PostgreSQL the
    row (an integration, a dispatch), locked as processing locks an integration (an upload can
    still be stored); on SQLite the database's one write lock."""
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        if connection.vendor == "postgresql":
            other.execute(f"SELECT 1 FROM {row._meta.db_table} WHERE id = %s FOR NO KEY UPDATE", [row.pk])
        else:
            other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.rollback()
        other.close()


def stored(upload):
    upload.refresh_from_db()
    return upload.status, list(MetricValue.objects.values_list("value", flat=True))


def test_a_busy_database_writes_nothing_and_a_later_try_processes_the_upload_once(live_calls, broker, impatient):
    upload = receive(live_calls, ROWS, content_type="application/json", channel="api")  # its task waits in the broker
    with held_elsewhere(live_calls):
        with pytest.raises(DATABASE_BUSY):
            processing.process_upload(upload.pk)
    status, values = stored(upload)
    # Claimed (PostgreSQL: the integration's lock is what it waited for) or not even that (SQLite).
    assert status in ("processing", "queued") and values == []

    assert processing.process_upload(upload.pk).status == "processed"
    assert stored(upload) == ("processed", [7.0])
    assert processing.process_upload(upload.pk) is None  # the task still in the broker finds it done


def test_the_task_tries_six_times_then_the_upload_fails_saying_why(live_calls, owner, broker, impatient, caplog):
    upload = receive(live_calls, ROWS, content_type="application/json", channel="api")
    with held_elsewhere(live_calls):
        # In-process, the retries follow at once (Celery's eager apply ignores the countdown); a
        # retry is not an error to raise here (conftest sets it back for every test).
        celery_app.conf.task_eager_propagates = False
        result = tasks.process_upload.apply(args=(upload.pk,))
        assert caplog.text.count("Retry in") == processing.BUSY_TRIES - 1
        if connection.vendor != "postgresql":
            # SQLite: the failure cannot be written either while another holds the write lock. The
            # upload stays queued for the stalled-upload check, which sends its task again.
            assert isinstance(result.result, DATABASE_BUSY)
            assert stored(upload) == ("queued", [])
            return
    assert result.get() == "failed"
    upload.refresh_from_db()
    assert upload.status == "failed" and MetricValue.objects.count() == 0
    assert upload.errors[0]["id"] == "database_unavailable"
    assert "busy or unreachable at each of 6 tries (OperationalError)" in upload.errors[0]["description"]

    assert processing.retry_upload(upload, owner)  # an editor retries it; its task (in the broker) …
    processing.process_upload(upload.pk)  # … processes it, once
    assert stored(upload) == ("processed", [7.0])


def test_an_outbound_attempt_is_tried_again_and_its_file_delivered_once(tenant, owner, httpserver, settings, broker,
                                                                        impatient, caplog):
    """The attempt's claim cannot be written: nothing is sent, and the task is tried again (then
    left to the stalled-dispatch check); a later try delivers the file, once."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    httpserver.expect_request("/api/v1/data/calls/", method="POST").respond_with_data("", status=201)
    vendor = services.create_integration(
        tenant, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=httpserver.url_for("/api/v1/data/calls/"),
        credentials={"auth_token": "vendor-token-0d1e"})
    services.set_sandbox(vendor, owner, False)
    upload = receive(vendor, ROWS, content_type="application/json", channel="api")  # its task waits in the broker
    dispatch = Dispatch.objects.get(upload=upload)

    celery_app.conf.task_eager_propagates = False  # as above
    with held_elsewhere(dispatch):
        result = tasks.send_dispatch.apply(args=(dispatch.pk, 1))
    assert caplog.text.count("Retry in") == processing.BUSY_TRIES - 1
    assert isinstance(result.result, DATABASE_BUSY)
    dispatch.refresh_from_db()
    assert dispatch.status == "waiting" and dispatch.attempts == 0 and httpserver.log == []

    tasks.send_dispatch.apply(args=(dispatch.pk, 1))
    upload.refresh_from_db()
    assert upload.status == "delivered" and len(httpserver.log) == 1


@pytest.mark.worker
def test_a_real_worker_whose_connection_the_database_drops_processes_the_upload_on_its_next_try(
        live_calls, worker, tmp_path):
    """The server terminates the worker's backend while it waits for the integration's lock (as a
    restart or a failover would): the task tries again on a new connection a second later."""
    if connection.vendor != "postgresql":
        pytest.skip("a server that terminates one connection: PostgreSQL's pg_terminate_backend")
    with held_elsewhere(live_calls):
        upload = receive(live_calls, ROWS, content_type="application/json", channel="api")

        waiting = []

        def a_backend_waits():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                               "AND datname = current_database()")
                waiting[:] = [pid for (pid,) in cursor.fetchall()]
            return waiting

        assert wait_for(a_backend_waits, timeout=60), (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", waiting)
        assert wait_for(lambda: "Retry in 1s" in (tmp_path / "worker.log").read_text(errors="replace"), timeout=30)
    done = wait_for(lambda: Upload.objects.get(pk=upload.pk).status == "processed", timeout=60)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert done, f"status {Upload.objects.get(pk=upload.pk).status}\n{log[-3000:]}"
    assert list(MetricValue.objects.values_list("value", flat=True)) == [7.0]


@pytest.mark.worker
def test_a_real_worker_goes_on_after_the_database_drops_its_connection(live_calls, worker, tmp_path):
    """The database drops the worker's idle connection (a restart, a failover): the next task
    meets the dead connection, which is closed after it, and its next try a second later
    processes the upload on a new one."""
    if connection.vendor != "postgresql":
        pytest.skip("a server that terminates one connection: PostgreSQL's pg_terminate_backend")
    log = tmp_path / "worker.log"
    first = receive(live_calls, ROWS, content_type="application/json", channel="api")
    assert wait_for(lambda: Upload.objects.get(pk=first.pk).status == "processed", timeout=60), log.read_text()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                       "AND datname = current_database() AND backend_type = 'client backend'")
        assert cursor.fetchone()[0] >= 1  # the worker's

    second = receive(live_calls, ROWS.replace(b"8/16/2016", b"8/17/2016"), content_type="application/json",
                     channel="api")
    done = wait_for(lambda: Upload.objects.get(pk=second.pk).status == "processed", timeout=30)
    text = log.read_text(errors="replace")
    assert done, f"status {Upload.objects.get(pk=second.pk).status}\n{text[-3000:]}"
    assert "Retry in 1s" in text
    assert sorted(MetricValue.objects.values_list("value", flat=True)) == [7.0, 7.0]
