"""Metric values carry no (tenant) or (upload) index (each cost writing a large upload about 40 ms):
what used them still works, through the indexes that remain."""

import datetime

import pytest
from django.db import connection

from integrations import services
from portal.models import Tenant
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db

DAY = datetime.date(2016, 8, 16)


def indexed_columns():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, MetricValue._meta.db_table)
    return {tuple(c["columns"]) for c in constraints.values() if c["index"] or c["unique"]}


def test_values_are_indexed_for_their_writes_and_lookups_only():
    columns = indexed_columns()
    assert {("metric_id", "account_id", "date"), ("integration_id", "date"), ("account_id",)} <= columns
    assert not columns & {("tenant_id",), ("upload_id",)}


def processed_values(tenant, integration, emails):
    upload = Upload.objects.create(tenant=tenant, integration=integration, channel="api", status="processed")
    metric = integration.metrics.get()
    for email in emails:
        account = Account.objects.create(tenant=tenant, email=email)
        MetricValue.objects.create(tenant=tenant, integration=integration, metric=metric, account=account, date=DAY,
                                   value=1, upload=upload)
    return upload


@pytest.fixture
def theirs(other_tenant, outsider):
    integration = services.create_integration(
        other_tenant, outsider, name="Calls", data_type="calls", data_format="json", field_keys=["email", "date", "calls"],
        metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
    return processed_values(other_tenant, integration, ["x@globex.com"])


def test_deleting_a_tenant_deletes_its_values_with_its_integrations(tenant, calls_integration, theirs):
    processed_values(tenant, calls_integration, ["a@x.com", "b@x.com"])
    Tenant.objects.get(pk=tenant.pk).delete()
    assert list(MetricValue.objects.values_list("tenant__slug", "account__email")) == [("globex", "x@globex.com")]


def test_deleting_an_upload_keeps_its_values_without_it(tenant, calls_integration, theirs):
    upload = processed_values(tenant, calls_integration, ["a@x.com"])
    upload.delete()
    assert MetricValue.objects.get(tenant=tenant).upload is None
    assert MetricValue.objects.get(tenant=theirs.tenant).upload == theirs


def test_deleting_an_account_deletes_its_values(tenant, calls_integration):
    processed_values(tenant, calls_integration, ["a@x.com", "b@x.com"])
    Account.objects.get(email="a@x.com").delete()
    assert list(MetricValue.objects.values_list("account__email", flat=True)) == ["b@x.com"]


def test_the_metric_value_list_shows_the_callers_tenant_only(client, tenant, calls_integration, api_token, theirs):
    """Both tenants have a `calls` integration: naming it lists the caller's values alone."""
    processed_values(tenant, calls_integration, ["a@x.com"])
    response = client.get("/api/v3/metric-values/", {"data_type": "calls"}, HTTP_AUTHORIZATION=f"Token {api_token}")
    assert response.status_code == 200, response.content
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [(row["email"], row["data_type"]) for row in rows] == [("a@x.com", "calls")]
