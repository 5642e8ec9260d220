"""Purge All Data: Sandbox Mode only, behind a confirmation, deletes values and stored files."""

import datetime

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from portal.models import AuditEvent
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def processed(tenant, calls_integration):
    upload = Upload(tenant=tenant, integration=calls_integration, channel="api", status="processed", records=1)
    upload.file.save("calls.json", ContentFile(b'[{"email": "a@x.com", "date": "8/16/2016", "calls": 3}]'))
    account = Account.objects.create(tenant=tenant, email="a@x.com")
    MetricValue.objects.create(tenant=tenant, integration=calls_integration, metric=calls_integration.metrics.get(),
                               account=account, date=datetime.date(2016, 8, 16), value=3, upload=upload)
    return upload


def test_purge_confirms_then_deletes_values_and_files(owner_client, tenant, calls_integration, processed,
                                                      django_capture_on_commit_callbacks):
    purge = reverse("integration_purge", args=[tenant.slug, calls_integration.pk])
    path = processed.file.path
    page = owner_client.get(purge).content.decode()
    assert "Purge All Data" in page and "<strong>1</strong> processed metric value and" in page
    assert MetricValue.objects.count() == 1  # the GET deletes nothing

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(purge, follow=True)
    assert "Purged 1 metric value and 1 file from 1 upload." in response.content.decode()
    assert MetricValue.objects.count() == 0
    processed.refresh_from_db()
    assert processed.status == Upload.Status.PURGED and not processed.file
    import os

    assert not os.path.exists(path)
    assert AuditEvent.objects.filter(action="integration.purged", detail__values=1).exists()


def test_purge_refused_out_of_sandbox(owner_client, tenant, calls_integration, processed, owner):
    from integrations import services

    services.set_sandbox(calls_integration, owner, False)
    settings_page = owner_client.get(reverse("integration_settings", args=[tenant.slug, calls_integration.pk]))
    assert "only available in Sandbox Mode" in settings_page.content.decode()
    response = owner_client.post(reverse("integration_purge", args=[tenant.slug, calls_integration.pk]), follow=True)
    assert "only available in Sandbox Mode" in response.content.decode()
    assert MetricValue.objects.count() == 1


def test_purge_leaves_other_integrations_alone(owner_client, tenant, calls_integration, activity_integration, processed):
    account = Account.objects.get()
    MetricValue.objects.create(tenant=tenant, integration=activity_integration,
                               metric=activity_integration.metrics.first(), account=account,
                               date=datetime.date(2016, 8, 16), value=9)
    owner_client.post(reverse("integration_purge", args=[tenant.slug, calls_integration.pk]))
    assert list(MetricValue.objects.values_list("integration", flat=True)) == [activity_integration.pk]
