"""A new integration's first steps: the setup checklist, the sample file and the curl example made
from its own field keys, its metric values with a chart per metric, Sandbox Mode off behind a
confirmation that says what starts counting, Purge All Data saying what goes, and an outbound
endpoint checked when it is saved."""

import csv
import datetime
import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations import services
from integrations.models import Integration
from uploads.intake import receive
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db


def url(name, tenant, *args):
    return reverse(name, args=[tenant.slug, *args])


def steps(page):
    """(label, done) of each step of the checklist on an overview page."""
    found = re.findall(r'<li class="(done)?">\s*<span class="tick"[^>]*>[^<]*</span>\s*<div><a href="[^"]*">([^<]+)</a>',
                       page)
    return [(label, bool(done)) for done, label in found]


def test_a_new_integration_lands_on_its_checklist_which_follows_what_is_done(
        owner_client, tenant, owner, django_capture_on_commit_callbacks):
    response = owner_client.post(url("integration_create", tenant), {
        "name": "Calls", "direction": "inbound", "protocol": "data_integration", "data_integration-data_type": "calls",
        "data_integration-data_format": "json", "data_integration-field_keys": "email, date, calls"})
    integration = Integration.objects.get(key="calls")
    assert response.url == url("integration_overview", tenant, integration.pk)
    page = owner_client.get(response.url).content.decode()
    assert "Set it up: 4 steps left" in page
    assert steps(page) == [("Generate the AUTH_TOKEN", False), ("Add metrics", False), ("Send a test file", False),
                           ("Turn Sandbox Mode off", False)]
    assert f'href="{url("integration_sample", tenant, integration.pk)}" download>Download a sample file' in page

    services.regenerate_integration_token(integration, owner)
    services.add_metric(integration, owner, "calls", "calls", "sum")
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url("upload_create", tenant), {"integration": integration.pk, "file": SimpleUploadedFile(
            "s.json", owner_client.get(url("integration_sample", tenant, integration.pk)).content)})
    page = owner_client.get(url("integration_overview", tenant, integration.pk)).content.decode()
    assert [done for _, done in steps(page)] == [True, True, True, False]
    assert f'href="{url("integration_sandbox_off", tenant, integration.pk)}">Turn Sandbox Mode off' in page
    services.set_sandbox(integration, owner, False)
    page = owner_client.get(url("integration_overview", tenant, integration.pk)).content.decode()
    assert "Set it up" not in page and "How it is doing" in page


def test_an_outbound_integration_has_its_own_checklist(owner_client, tenant, owner, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    vendor = services.create_integration(
        tenant, owner, name="Vendor", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url="http://127.0.0.1:9/api/v1/data/calls/",
        credentials={"auth_token": "vendor-Secret-7f3c9a1be24d"})
    page = owner_client.get(url("integration_overview", tenant, vendor.pk)).content.decode()
    assert steps(page) == [("Store the vendor&#x27;s credentials", True), ("Dry-run a file", False),
                           ("Turn Sandbox Mode off", False)]


def test_the_sample_file_is_built_from_the_field_keys_and_is_accepted_as_it_is(
        owner_client, tenant, activity_integration, calls_integration):
    today = timezone.localdate()
    response = owner_client.get(url("integration_sample", tenant, activity_integration.pk))
    assert response["Content-Disposition"] == 'attachment; filename="activity-sample.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == ["email", "date", "calls", "talk_minutes", "deals"] and len(rows) == 3
    assert rows[0]["email"] == "jason@yourcompany.com" and rows[0]["date"] == f"{today.month}/{today.day}/{today.year}"
    assert rows[0]["calls"] == "3"
    check = activity_integration.protocol_spec.check
    assert check(activity_integration, io.BytesIO(response.content), "text/csv").records == 3

    sample = owner_client.get(url("integration_sample", tenant, calls_integration.pk))
    assert sample["Content-Type"] == "application/json"
    assert [set(r) for r in json.loads(sample.content)] == [{"email", "date", "calls"}] * 3
    assert check(calls_integration, io.BytesIO(sample.content), "application/json").records == 3


def test_a_protocol_without_field_keys_has_no_sample(owner_client, tenant, owner):
    source = services.create_integration(tenant, owner, name="Feedback", protocol="source_import", source_id="crm")
    assert owner_client.get(url("integration_sample", tenant, source.pk)).status_code == 404


def test_the_curl_example_uses_the_integrations_own_keys(owner_client, tenant, calls_integration,
                                                         activity_integration):
    page = owner_client.get(url("integration_credentials", tenant, calls_integration.pk)).content.decode()
    example = page.split('<pre class="example" id="curl-example">')[1].split("</pre>")[0]
    assert "-d '[{&quot;email&quot;: &quot;jason@yourcompany.com&quot;, &quot;date&quot;: " in example
    assert "&quot;calls&quot;: &quot;3&quot;}]'" in example and "@yourfile" not in example
    assert "http://testserver/api/v1/data/calls/" in example and "Token AUTH_TOKEN" in example
    page = owner_client.get(url("integration_credentials", tenant, activity_integration.pk)).content.decode()
    assert "--data-binary @activity-sample.csv" in page and "Download activity-sample.csv" in page
    # Right after generating it, the token itself is in the example (this page is the only one that shows it).
    response = owner_client.post(url("integration_token_regenerate", tenant, calls_integration.pk))
    token = re.search(r'<code id="new-token">([^<]+)</code>', response.content.decode()).group(1)
    assert f"Authorization: Token {token}" in response.content.decode()


def test_metric_values_are_browsable_with_a_chart_per_metric(owner_client, tenant, activity_integration, outsider):
    metrics = {m.name: m for m in activity_integration.metrics.all()}
    ann = Account.objects.create(tenant=tenant, email="ann@x.com")
    bob = Account.objects.create(tenant=tenant, email="bob@x.com")
    start = datetime.date(2026, 11, 1)
    for day in range(5):
        for account, value in ((ann, day + 1), (bob, 10)):
            MetricValue.objects.create(tenant=tenant, integration=activity_integration, metric=metrics["calls"],
                                       account=account, date=start + datetime.timedelta(days=day), value=value)
    page = owner_client.get(url("integration_values", tenant, activity_integration.pk)).content.decode()
    charts = page.split('<figure class="card chart">')[1:]
    assert len(charts) == 3  # one per metric, those without values say so
    calls = next(c for c in charts if "<strong>calls</strong>" in c)
    assert calls.count("<rect ") == 5
    assert 'aria-label="calls: daily totals of 5 days, from 1 Nov 2026 to 5 Nov 2026; highest 15"' in calls
    assert "<title>5 Nov 2026: 15</title>" in calls
    assert "No values yet." in next(c for c in charts if "<strong>deals</strong>" in c)
    assert page.count("<td data-label=\"User\"") == 10 and "Sandbox Mode: these values show here only" in page
    filtered = owner_client.get(url("integration_values", tenant, activity_integration.pk)
                                + "?account=ann&since=2026-11-04").content.decode()
    assert filtered.count("<td data-label=\"User\"") == 2 and "bob@x.com" not in filtered
    theirs = Client()
    theirs.force_login(outsider)
    assert theirs.get(url("integration_values", tenant, activity_integration.pk)).status_code == 404


def test_sandbox_off_says_what_starts_counting_then_turns_it_off(owner_client, tenant, calls_integration,
                                                                 django_capture_on_commit_callbacks):
    body = json.dumps([{"email": f"u{n}@x.com", "date": "8/16/2016", "calls": "1"} for n in range(1500)]).encode()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            receive(calls_integration, body, channel="api", content_type="application/json")
    response = owner_client.post(url("integration_settings", tenant, calls_integration.pk),
                                 {"name": "Calls (JSON)", "enabled": "on"})
    assert response.url == url("integration_sandbox_off", tenant, calls_integration.pk)
    page = owner_client.get(response.url).content.decode()
    assert "Your other changes are saved." in page  # the new name
    assert ("<strong>2 uploads received in Sandbox Mode are not purged</strong>:\n       3,000 records, "
            "1,500 metric values.") in page
    assert url("integration_purge", tenant, calls_integration.pk) in page
    calls_integration.refresh_from_db()
    assert calls_integration.sandbox and calls_integration.name == "Calls (JSON)"

    response = owner_client.post(url("integration_sandbox_off", tenant, calls_integration.pk), follow=True)
    assert "Sandbox Mode is off. Its values count now." in response.content.decode()
    calls_integration.refresh_from_db()
    assert not calls_integration.sandbox
    again = owner_client.get(url("integration_sandbox_off", tenant, calls_integration.pk), follow=True)
    assert "Sandbox Mode is already off." in again.content.decode()


def test_sandbox_off_needs_the_edit_permission(viewer_client, tenant, calls_integration):
    assert viewer_client.get(url("integration_sandbox_off", tenant, calls_integration.pk)).status_code == 403
    assert viewer_client.post(url("integration_sandbox_off", tenant, calls_integration.pk)).status_code == 403
    calls_integration.refresh_from_db()
    assert calls_integration.sandbox


def test_an_outbound_integration_warns_that_files_go_for_real(owner_client, tenant, owner, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    vendor = services.create_integration(
        tenant, owner, name="Vendor", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url="http://127.0.0.1:9/api/v1/data/calls/",
        credentials={"auth_token": "vendor-Secret-7f3c9a1be24d"})
    page = owner_client.get(url("integration_sandbox_off", tenant, vendor.pk)).content.decode()
    assert "Files are sent to the vendor for real" in page and "http://127.0.0.1:9/api/v1/data/calls/" in page


def test_purge_says_that_production_data_goes_too(owner_client, tenant, calls_integration):
    Upload.objects.create(tenant=tenant, integration=calls_integration, channel="api", status="processed",
                          records=1200, sandbox=False)
    Upload.objects.create(tenant=tenant, integration=calls_integration, channel="api", status="queued",
                          records=5, sandbox=True)
    page = owner_client.get(url("integration_purge", tenant, calls_integration.pk)).content.decode()
    assert "<strong>1 of these upload was received out of Sandbox Mode</strong> (1,200 records)" in page
    assert "1 upload not processed yet is purged too" in page and "1,205 records" in page


def test_an_outbound_endpoint_is_checked_when_it_is_saved(owner_client, tenant, owner, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    vendor = services.create_integration(
        tenant, owner, name="Vendor", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url="http://127.0.0.1:9/api/v1/data/calls/",
        credentials={"auth_token": "vendor-Secret-7f3c9a1be24d"})
    for endpoint in ("http://10.0.3.7/api/v1/data/calls/", "ftp://vendor.example.com/api/"):
        response = owner_client.post(url("integration_settings", tenant, vendor.pk), {
            "name": "Vendor", "enabled": "on", "sandbox": "on", "endpoint_url": endpoint, "max_attempts": 5})
        page = response.content.decode()
        assert response.status_code == 200 and 'id="field-endpoint_url"' in page
        error = re.search(r'<span class="field-error" role="alert">([^<]+)</span>', page).group(1)
        assert "PORTAL_OUTBOUND_ALLOWED_NETWORKS" not in error and "10.0.3.7" not in error.split("http")[0]
    vendor.refresh_from_db()
    assert vendor.endpoint_url == "http://127.0.0.1:9/api/v1/data/calls/"


def test_viewers_are_told_the_pages_are_read_only(tenant, viewer, calls_integration):
    client = Client()
    client.force_login(viewer)
    for name in ("integration_settings", "integration_protocol_settings", "integration_metrics"):
        assert "Read-only:" in client.get(url(name, tenant, calls_integration.pk)).content.decode()
