"""Administration > Data > Integrations: list, create, tabs, delete — through the test client."""

import pytest
from django.urls import reverse

from integrations.models import Integration
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def url(name, tenant, *args):
    return reverse(name, args=[tenant.slug, *args])


def test_empty_list_says_what_to_do(owner_client, tenant):
    page = owner_client.get(url("integration_list", tenant)).content.decode()
    assert "No integrations yet" in page
    assert "Create your first integration" in page


def test_create_integration_starts_in_sandbox_and_is_audited(owner_client, tenant, owner):
    response = owner_client.post(url("integration_create", tenant), {
        "name": "Calls", "direction": "inbound", "protocol": "data_integration", "data_integration-data_type": "calls",
        "data_integration-data_format": "json", "data_integration-field_keys": "email, date, calls",
    }, follow=True)
    integration = Integration.objects.get(tenant=tenant, key="calls")
    assert integration.sandbox is True
    assert integration.settings["field_keys"] == ["email", "date", "calls"]
    assert "in Sandbox Mode" in response.content.decode()
    listing = owner_client.get(url("integration_list", tenant)).content.decode()
    assert "Sandbox Mode</span>" in listing
    event = AuditEvent.objects.get(action="integration.created")
    assert (event.actor, event.integration) == (owner, integration)


def test_create_shows_field_errors_beside_fields(owner_client, tenant, calls_integration):
    response = owner_client.post(url("integration_create", tenant), {
        "name": "", "direction": "inbound", "protocol": "data_integration", "data_integration-data_type": "calls",
        "data_integration-data_format": "json",
    })
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="field-name"' in page and "This field is required." in page
    assert "already has an integration with this data type" in page
    assert Integration.objects.filter(tenant=tenant).count() == 1


def test_settings_toggle_sandbox_is_audited(owner_client, tenant, calls_integration):
    response = owner_client.post(url("integration_settings", tenant, calls_integration.pk),
                                 {"name": "Calls", "enabled": "on"})  # sandbox checkbox left unticked
    # Sandbox Mode off is confirmed on its own page first (tests/test_onboarding.py says what it shows).
    assert response.url == url("integration_sandbox_off", tenant, calls_integration.pk)
    calls_integration.refresh_from_db()
    assert calls_integration.sandbox is True
    owner_client.post(response.url)
    calls_integration.refresh_from_db()
    assert calls_integration.sandbox is False
    assert AuditEvent.objects.filter(action="sandbox.disabled", integration=calls_integration).exists()
    page = owner_client.get(url("integration_list", tenant)).content.decode()
    assert "Sandbox Mode</span>" not in page
    owner_client.post(url("integration_settings", tenant, calls_integration.pk),
                      {"name": "Calls", "enabled": "on", "sandbox": "on"})
    assert AuditEvent.objects.filter(action="sandbox.enabled").exists()


def test_data_format_tab_checks_user_key_is_a_field_key(owner_client, tenant, calls_integration):
    response = owner_client.post(url("integration_protocol_settings", tenant, calls_integration.pk), {
        "data_type": "calls", "data_format": "json", "field_keys": "email, date, calls", "user_key": "username",
        "date_key": "date",
        "date_format": "M/D/YYYY", "flatten_json": "on", "flatten_separator": ".", "unknown_user": "create",
    })
    assert "“username” is not one of the field keys." in response.content.decode()
    response = owner_client.post(url("integration_protocol_settings", tenant, calls_integration.pk), {
        "data_type": "calls", "data_format": "json", "field_keys": "user.email, date, calls", "user_key": "user.email",
        "date_key": "date", "date_format": "YYYY-MM-DD", "flatten_json": "on", "flatten_separator": ".",
        "unknown_user": "reject",
    })
    assert response.status_code == 302
    calls_integration.refresh_from_db()
    assert calls_integration.settings["user_key"] == "user.email"
    assert calls_integration.settings["unknown_user"] == "reject"
    changed = AuditEvent.objects.filter(action="integration.changed").latest("id")
    assert {"user_key", "unknown_user", "field_keys", "date_format"} <= set(changed.detail["fields"])


def test_metrics_tab_add_and_delete(owner_client, tenant, activity_integration):
    page = owner_client.get(url("integration_metrics", tenant, activity_integration.pk)).content.decode()
    assert "talk_minutes" in page
    owner_client.post(url("integration_metrics", tenant, activity_integration.pk),
                      {"name": "max deals", "source_key": "deals", "aggregation": "max"})
    metric = activity_integration.metrics.get(name="max deals")
    assert metric.aggregation == "max"
    owner_client.post(url("metric_delete", tenant, activity_integration.pk, metric.pk))
    assert not activity_integration.metrics.filter(name="max deals").exists()
    details = [e.detail for e in AuditEvent.objects.filter(action="integration.changed", integration=activity_integration)]
    assert {"fields": ["metrics"], "metric_added": "max deals"} in details
    assert {"fields": ["metrics"], "metric_deleted": "max deals"} in details


def test_metrics_empty_state_explains_no_values(owner_client, tenant, owner):
    from integrations import services

    integration = services.create_integration(tenant, owner, name="Bare", data_type="bare", field_keys=["email", "date"])
    page = owner_client.get(url("integration_metrics", tenant, integration.pk)).content.decode()
    assert "No metrics yet" in page


def test_delete_asks_for_confirmation(owner_client, tenant, calls_integration):
    page = owner_client.get(url("integration_delete", tenant, calls_integration.pk)).content.decode()
    assert "cannot be undone" in page
    assert Integration.objects.filter(pk=calls_integration.pk).exists()
    owner_client.post(url("integration_delete", tenant, calls_integration.pk))
    assert not Integration.objects.filter(pk=calls_integration.pk).exists()
    assert AuditEvent.objects.filter(action="integration.deleted", target="Calls").exists()


def test_activity_page_lists_events(owner_client, tenant, calls_integration):
    page = owner_client.get(url("activity", tenant)).content.decode()
    assert "Integration created" in page and "olivia" in page
