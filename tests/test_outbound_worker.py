"""A real Celery worker sends an outbound upload, and waits the backoff between attempts."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from live_stack import wait_for

from integrations import services
from uploads.models import CallLog, Upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

VENDOR_TOKEN = "vendor-Secret-worker-91c2e7"
PATH = "/api/v1/data/calls/"


@pytest.fixture(autouse=True)
def _vendor_on_loopback(monkeypatch, settings):
    # The worker is another process: it reads the allowed networks from its environment.
    monkeypatch.setenv("PORTAL_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def test_a_real_worker_retries_after_the_backoff_and_delivers(
        owner_client, worker, tenant, owner, httpserver, tmp_path):
    arrivals = []

    def answer(status):
        def handler(request):
            from werkzeug import Response

            arrivals.append(time.monotonic())
            return Response("", status=status)
        return handler

    httpserver.expect_ordered_request(PATH, method="POST").respond_with_handler(answer(503))
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_handler(answer(201))
    integration = services.create_integration(
        tenant, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=httpserver.url_for(PATH),
        credentials={"auth_token": VENDOR_TOKEN},
    )
    services.set_sandbox(integration, owner, False)
    owner_client.post(reverse("upload_create", args=[tenant.slug]), {
        "integration": integration.pk, "file": SimpleUploadedFile(
            "calls.json", b'[{"email": "a@example.com", "date": "8/16/2016", "calls": 1}]', "application/json"),
    })
    upload = Upload.objects.get(integration=integration)

    delivered = wait_for(lambda: Upload.objects.get(pk=upload.pk).status == Upload.Status.DELIVERED, timeout=60)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert delivered, f"status {Upload.objects.get(pk=upload.pk).status}\n{log[-3000:]}"
    first, second = CallLog.objects.filter(upload=upload)
    assert (first.status_code, second.status_code) == (503, 201)
    # The default backoff is 10 s ± 20 %: the worker waited it (a countdown), it did not spin.
    assert 8 <= first.retry_in_seconds <= 12
    assert arrivals[1] - arrivals[0] >= first.retry_in_seconds - 0.5
    assert VENDOR_TOKEN not in log
