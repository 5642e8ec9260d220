"""`manage.py demo --json`, and the Django admin for support staff."""

import json

import pytest
from django.core.management import call_command

from integrations import registry
from integrations.models import ApiToken, Integration, IntegrationToken
from portal.models import Tenant

pytestmark = pytest.mark.django_db


def run_demo(*args):
    from io import StringIO

    out = StringIO()
    call_command("demo", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_demo_is_idempotent_and_issues_fresh_tokens(settings):
    # The demo's outbound integration calls the portal itself, over plain http: an allowed network.
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    first = run_demo("--base-url", "http://127.0.0.1:8000")
    second = run_demo("--base-url", "http://127.0.0.1:8000")
    assert set(first) == {"base_url", "tenant", "username", "password", "api_token", "integrations",
                          "support_username", "admin_url"}
    assert first["tenant"] == "demo" and Tenant.objects.count() == 1
    # An inbound integration of every protocol, and the outbound one; the same ones the second time.
    assert {i["protocol"] for i in second["integrations"]} == {
        p.slug for p in registry.all_protocols() if "inbound" in p.directions}
    assert all({"name", "protocol", "direction"} <= set(i) for i in second["integrations"])
    assert Integration.objects.count() == len(second["integrations"]) + 1
    source = next(i for i in second["integrations"] if i["protocol"] == "source_import")
    assert {"endpoint", "source_id", "api_key"} <= set(source) and source["endpoint"].endswith("/api/v1/source/import")
    assert source["api_key"] != next(i for i in first["integrations"] if i["protocol"] == "source_import")["api_key"]
    calls = next(i for i in second["integrations"] if i["data_type"] == "calls")
    assert calls["data_format"] == "json" and calls["field_keys"] == ["email", "date", "calls"]
    assert calls["endpoint"].endswith("/api/v1/data/calls/")
    assert first["api_token"] != second["api_token"]
    assert ApiToken.objects.find(first["api_token"]) is None
    assert ApiToken.objects.find(second["api_token"]).can_write
    assert IntegrationToken.objects.find(calls["auth_token"]).integration.key == "calls"
    # The outbound one sends to the portal's own calls endpoint, with that endpoint's current token.
    outbound = Integration.objects.get(direction="outbound", key="calls")
    assert outbound.sandbox and outbound.endpoint_url == calls["endpoint"]
    assert outbound.read_vendor_credentials() == {"auth_token": calls["auth_token"]}
    # Its activity integration is out of Sandbox Mode: its month of values counts towards the scores.
    integration = Integration.objects.get(key="activity", direction="inbound")
    assert not integration.sandbox and integration.settings["data_format"] == "csv"
    assert sorted(integration.metrics.values_list("name", flat=True)) == ["calls", "deals", "talk_minutes"]


def test_demo_json_from_a_shell_keeps_the_outbound_demo_sending_the_current_token(settings):
    """make run allows the loopback endpoint; a shell running `demo --json` beside it does not.
    The calls token is issued anew all the same, and the outbound integration must send it."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    run_demo("--base-url", "http://127.0.0.1:8000")
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    calls = next(i for i in run_demo("--base-url", "http://127.0.0.1:8000")["integrations"] if i["data_type"] == "calls")
    outbound = Integration.objects.get(direction="outbound", key="calls")
    assert outbound.read_vendor_credentials() == {"auth_token": calls["auth_token"]}


def test_demo_other_tenant():
    # A base URL that a vendor endpoint may not have (no dot in the host): no outbound demo.
    assert run_demo("--tenant", "other", "--base-url", "http://testserver")["tenant"] == "other"
    assert not Integration.objects.filter(direction="outbound").exists()


def test_admin_lists_models_without_secrets(admin_client, calls_integration, api_token, owner):
    from integrations import services

    token = services.regenerate_integration_token(calls_integration, owner)
    row = IntegrationToken.objects.find(token)
    for path in ["/admin/integrations/integration/", f"/admin/integrations/integration/{calls_integration.pk}/change/",
                 "/admin/integrations/apitoken/", "/admin/integrations/integrationtoken/",
                 f"/admin/integrations/integrationtoken/{row.pk}/change/", "/admin/portal/auditevent/",
                 "/admin/portal/tenant/", "/admin/uploads/upload/", "/admin/uploads/metricvalue/",
                 "/admin/uploads/account/"]:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        page = response.content.decode()
        assert row.token_hash not in page and token not in page and api_token not in page
