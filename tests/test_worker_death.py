"""A worker killed mid-work (SIGKILL to its process group: the worker, its pool, its embedded
beat) and started again: the upload it was processing is processed, and the file it was
sending is delivered, each exactly once, on the filesystem broker and on Redis; and within
the time docs/operations.md promises with the default settings.

The worker runs as `make run` runs it (bin/run: thread pool, beat embedded); files come in
through gunicorn as deployed. The vendor holds its answer to the first request until the
worker is dead, so that the kill lands mid-exchange; the upload is a 15 MB file, killed while
its row says "processing". Slow (minutes): runs when PORTAL_SLOW_TESTS is set.
"""

import hashlib
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
import requests
from werkzeug import Response

from integrations import services
from integrations.models import ApiToken
from live_stack import gunicorn, start_worker, stop, wait_for
from uploads.delivery.dispatch import attempt_lease_seconds
from uploads.models import CallLog, Dispatch, MetricValue, Upload

pytestmark = [
    pytest.mark.slow, pytest.mark.worker,
    pytest.mark.skipif(not os.environ.get("PORTAL_SLOW_TESTS"), reason="slow: set PORTAL_SLOW_TESTS=1"),
    pytest.mark.django_db(transaction=True),
]

PATH = "/api/v1/data/calls/"
VENDOR_FILE = b'[{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]'
RECOVERY_LIMIT = 120  # seconds from the kill to the upload processed and the file delivered, with the defaults


def big_csv(rows=390_000, users=500, days=30, seed=7):
    """About 15 MB of activity rows, and the sums each (user, date, metric) must end with."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "email": [f"user{n}@example.com" for n in rng.integers(0, users, rows)],
        "date": [f"8/{d}/2016" for d in rng.integers(1, days + 1, rows)],
        "calls": rng.integers(0, 50, rows), "talk_minutes": rng.integers(0, 500, rows),
        "deals": rng.integers(0, 5, rows)})
    body = frame.to_csv(index=False).encode()
    return body, float(frame[["calls", "talk_minutes", "deals"]].to_numpy().sum())


@pytest.fixture(params=["filesystem", "redis"])
def broker(request, tmp_path):
    if request.param == "filesystem":
        folder = tmp_path / "broker"
        folder.mkdir()
        return {"CELERY_BROKER_URL": "filesystem://", "CELERY_BROKER_FOLDER": str(folder)}
    import redis

    url = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    try:
        redis.Redis.from_url(url).flushdb()  # a database of this test's own, empty
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {url}: {exc}")
    return {"CELERY_BROKER_URL": url}


@pytest.fixture
def vendor(httpserver):
    """Holds its answer to the first request until released; takes every file (201)."""
    arrived, release, bodies = threading.Event(), threading.Event(), []

    def answer(request):
        bodies.append(hashlib.sha256(request.get_data()).hexdigest())
        if len(bodies) == 1:
            arrived.set()
            release.wait(timeout=600)
        return Response('{"id": 1}', status=201, content_type="application/json")

    httpserver.expect_request(PATH, method="POST").respond_with_handler(answer)
    httpserver.arrived, httpserver.release, httpserver.bodies = arrived, release, bodies
    yield httpserver
    release.set()


def test_a_worker_killed_mid_upload_and_mid_send_finishes_both_exactly_once(
        broker, vendor, tenant, owner, tmp_path, settings, activity_integration):
    allowed = {"PORTAL_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32"}
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    services.set_sandbox(activity_integration, owner, False)
    auth_token = services.regenerate_integration_token(activity_integration, owner)
    outbound = services.create_integration(
        tenant, owner, name="Vendor", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=vendor.url_for(PATH),
        credentials={"auth_token": "vendor-Secret-6d0e"})
    services.set_sandbox(outbound, owner, False)
    _, api_token = services.issue_api_token(tenant, owner, "kills", ApiToken.Scope.READ_WRITE)
    body, total = big_csv()
    assert 14_000_000 < len(body) <= 15 * 1024 * 1024

    def worker(name):  # as bin/run starts it
        return start_worker(tmp_path, settings.MEDIA_ROOT, broker, name=name, pool="threads", beat=True,
                            extra_env=allowed)

    with gunicorn(tmp_path, settings.MEDIA_ROOT, broker_env=broker, env=allowed) as server:
        first = worker("first")
        try:
            sent = requests.post(f"{server.url}/api/v3/integrations/{outbound.pk}/uploads/", timeout=60,
                                 headers={"Authorization": f"Token {api_token}"},
                                 files={"file": ("calls.json", VENDOR_FILE, "application/json")})
            assert sent.status_code == 201, sent.text
            assert vendor.arrived.wait(timeout=90), first.log_path.read_text()[-3000:]  # mid-exchange now

            received = requests.post(f"{server.url}/api/v1/data/activity/", data=body, timeout=120,
                                     headers={"Authorization": f"Token {auth_token}", "Content-Type": "text/csv"})
            assert received.status_code == 201, received.text
            upload = Upload.objects.filter(pk=received.json()["id"])
            assert wait_for(lambda: upload.get().status == "processing", timeout=90, interval=0.005), \
                (upload.get().status, first.log_path.read_text()[-3000:])

            os.killpg(first.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            first.wait()
        finally:
            stop(first)
        vendor.release.set()  # its answer goes to a dead socket
        assert upload.get().status == "processing"  # the dead worker's claim, nothing written
        assert MetricValue.objects.filter(integration=activity_integration).count() == 0

        second = worker("second")
        try:
            assert wait_for(lambda: upload.get().status == "processed", timeout=RECOVERY_LIMIT + 30)
            upload_recovery = time.monotonic() - killed_at
            dispatch = Dispatch.objects.get(upload_id=sent.json()["id"])
            assert wait_for(lambda: Upload.objects.get(pk=dispatch.upload_id).status == "delivered",
                            timeout=RECOVERY_LIMIT + 30)
            send_recovery = time.monotonic() - killed_at
        finally:
            stop(second)
        log = second.log_path.read_text(errors="replace")

    # Exactly once: the file's values, not twice; one dispatch, delivered once in its log.
    values = MetricValue.objects.filter(integration=activity_integration)
    assert values.count() == 500 * 30 * 3 and sum(values.values_list("value", flat=True)) == total
    assert upload.get().values_written == 45_000
    dispatch.refresh_from_db()
    assert (dispatch.status, Dispatch.objects.filter(upload_id=dispatch.upload_id).count()) == ("delivered", 1)
    calls = CallLog.objects.filter(dispatch=dispatch).order_by("created_at", "id")
    assert [c.status_code for c in calls] == [None, 201]  # the exchange the dead worker began, then the one that took
    # The vendor got the same file again (at least once is what a network can promise; seed 000's
    # receiving end replaces values by user, date and metric, so the second changes nothing).
    assert len(set(vendor.bodies)) == 1 and len(vendor.bodies) == 2
    assert "queued again" in log
    assert upload_recovery < RECOVERY_LIMIT, upload_recovery
    assert send_recovery < RECOVERY_LIMIT, send_recovery
    print(f"\nrecovery ({broker['CELERY_BROKER_URL']}): upload {upload_recovery:.0f} s, "
          f"send {send_recovery:.0f} s (lease {attempt_lease_seconds()} s)")
