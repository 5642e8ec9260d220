"""Every query is scoped to the tenant; viewers look but do not change."""

import pytest
from django.urls import reverse

from integrations.models import Integration

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_sign_in(client, tenant):
    response = client.get(reverse("integration_list", args=[tenant.slug]))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("name", [
    "integration_settings", "integration_protocol_settings", "integration_metrics", "integration_credentials",
    "integration_uploads", "integration_delete", "integration_purge",
])
def test_outsider_gets_404_on_another_tenants_integration(outsider_client, outsider, tenant, calls_integration, name):
    # Through the other tenant's URL …
    assert outsider_client.get(reverse(name, args=[tenant.slug, calls_integration.pk])).status_code == 404
    # … and through the outsider's own tenant slug with the foreign id.
    own = outsider.memberships.get().tenant.slug
    assert outsider_client.get(reverse(name, args=[own, calls_integration.pk])).status_code == 404


def test_outsider_cannot_post_to_another_tenant(outsider_client, outsider, tenant, calls_integration):
    own = outsider.memberships.get().tenant.slug
    response = outsider_client.post(reverse("integration_delete", args=[own, calls_integration.pk]))
    assert response.status_code == 404
    assert Integration.objects.filter(pk=calls_integration.pk).exists()


def test_outsider_list_does_not_show_other_tenants_integrations(outsider_client, outsider, calls_integration):
    own = outsider.memberships.get().tenant.slug
    page = outsider_client.get(reverse("integration_list", args=[own])).content.decode()
    assert "Calls" not in page


def test_viewer_sees_but_cannot_change(viewer_client, tenant, calls_integration):
    page = viewer_client.get(reverse("integration_settings", args=[tenant.slug, calls_integration.pk]))
    assert page.status_code == 200
    assert "Purge All Data" not in page.content.decode()
    response = viewer_client.post(reverse("integration_settings", args=[tenant.slug, calls_integration.pk]),
                                  {"name": "Hacked", "enabled": "on"})
    assert response.status_code == 403
    assert "Integrations: Edit" in response.content.decode()
    calls_integration.refresh_from_db()
    assert calls_integration.name == "Calls" and calls_integration.sandbox
    for name in ("integration_create", "token_create"):
        assert viewer_client.get(reverse(name, args=[tenant.slug])).status_code == 403
    assert viewer_client.post(reverse("integration_purge", args=[tenant.slug, calls_integration.pk])).status_code == 403


def test_editor_can_change(editor_client, tenant, calls_integration):
    response = editor_client.post(reverse("integration_settings", args=[tenant.slug, calls_integration.pk]),
                                  {"name": "Renamed", "enabled": "on", "sandbox": "on"})
    assert response.status_code == 302
    calls_integration.refresh_from_db()
    assert calls_integration.name == "Renamed"
