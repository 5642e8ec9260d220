"""integrations/attempts.py writes and reads its rows with hand-built SQL: what it stores and
loads must be exactly what the ORM stores and loads, on SQLite and on PostgreSQL (CI runs
both), JSON, dates and times included."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import attempts, services
from integrations.models import CallLog, Dispatch, Integration
from uploads.models import Upload

pytestmark = pytest.mark.django_db

LEASE = 120


def fields_of(instance):
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


@pytest.fixture
def dispatch(tenant, owner):
    integration = services.create_integration(
        tenant, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url="https://vendor.example/api/v1/data/calls/",
        credentials={"auth_token": "vendor-token-1234"},
    )
    upload = Upload.objects.create(
        tenant=tenant, integration=integration, channel="api", status=Upload.Status.SENDING, records=1,
        errors=[{"id": "x", "description": "ünïcode", "row": 2, "column": None}], content_type="application/json",
    )
    return Dispatch.objects.create(tenant=tenant, upload=upload, max_attempts=3)


def test_claim_loads_what_the_orm_loads(dispatch):
    now = timezone.now()
    claimed = attempts.claim(dispatch.pk, 1, now, LEASE)

    assert claimed is not None
    assert fields_of(claimed) == fields_of(Dispatch.objects.get(pk=dispatch.pk))
    assert claimed.status == Dispatch.Status.SENDING and claimed.attempts == 1 and claimed.claimed_at == now
    assert fields_of(claimed.upload) == fields_of(Upload.objects.get(pk=dispatch.upload_id))
    assert fields_of(claimed.upload.integration) == fields_of(Integration.objects.get(pk=dispatch.upload.integration_id))
    assert claimed.upload.errors[0]["description"] == "ünïcode"
    assert claimed.upload.integration.field_keys == ["email", "date", "calls"]
    assert claimed.upload.integration.read_vendor_credentials() == {"auth_token": "vendor-token-1234"}


def test_an_attempt_is_claimed_once_in_order_and_taken_over_only_after_its_lease(dispatch):
    now = timezone.now()
    assert attempts.claim(dispatch.pk, 2, now, LEASE) is None  # attempt 1 first
    assert attempts.claim(dispatch.pk, 1, now, LEASE) is not None
    assert attempts.claim(dispatch.pk, 1, now, LEASE) is None  # taken
    assert attempts.claim(dispatch.pk, 1, now + timedelta(seconds=LEASE - 1), LEASE) is None  # still leased
    later = now + timedelta(seconds=LEASE + 1)
    taken_over = attempts.claim(dispatch.pk, 1, later, LEASE)
    assert taken_over.claimed_at == later and taken_over.attempts == 1
    assert attempts.claim(99_999_999, 1, now, LEASE) is None


def test_write_outcome_stores_what_the_orm_would(dispatch):
    claimed = attempts.claim(dispatch.pk, 1, timezone.now(), LEASE)
    began = timezone.now() - timedelta(seconds=2)
    calls = [
        CallLog(tenant_id=claimed.tenant_id, upload_id=claimed.upload_id, dispatch=claimed, attempt=1, method="POST",
                url="https://vendor.example/api/v1/data/calls/", request_headers={"Authorization": "[redacted]"},
                request_body_size=10, status_code=302, response_headers={"Location": "/elsewhere/"},
                duration_ms=12, created_at=began),
        CallLog(tenant_id=claimed.tenant_id, upload_id=claimed.upload_id, dispatch=claimed, attempt=1, method="POST",
                url="https://vendor.example/elsewhere/", status_code=503, response_excerpt='{"errors": []}',
                retry_in_seconds=12.5, created_at=began + timedelta(seconds=1)),
    ]
    next_at = timezone.now() + timedelta(seconds=12.5)
    errors = [{"id": "http_503", "description": "busy – “later”", "row": None, "column": None}]
    attempts.write_outcome(claimed, calls, {"status": Dispatch.Status.WAITING, "next_attempt_at": next_at},
                           {"errors": errors, "message": "Retrying in 12 s."})

    stored = list(CallLog.objects.filter(dispatch=claimed).order_by("created_at"))
    assert len(stored) == 2
    for written, read in zip(calls, stored):
        expected = fields_of(written)
        expected["id"] = read.id
        assert fields_of(read) == expected
    assert Dispatch.objects.filter(pk=claimed.pk, status=Dispatch.Status.WAITING, next_attempt_at=next_at).exists()
    upload = Upload.objects.get(pk=claimed.upload_id)
    assert upload.errors == errors and upload.message == "Retrying in 12 s." and upload.status == Upload.Status.SENDING
    assert json.loads(json.dumps(upload.errors)) == errors


def test_write_outcome_leaves_an_upload_that_stopped_sending(dispatch):
    claimed = attempts.claim(dispatch.pk, 1, timezone.now(), LEASE)
    Upload.objects.filter(pk=claimed.upload_id).update(status=Upload.Status.PURGED)  # purged meanwhile
    attempts.write_outcome(claimed, [], {"status": Dispatch.Status.DELIVERED, "finished_at": timezone.now()},
                           {"status": Upload.Status.DELIVERED, "message": "Delivered"})

    assert Upload.objects.get(pk=claimed.upload_id).status == Upload.Status.PURGED
    assert Dispatch.objects.get(pk=claimed.pk).status == Dispatch.Status.DELIVERED
    assert not CallLog.objects.exists()
