"""Credentials tab (AUTH_TOKEN, ENDPOINT) and Standard API Token Management: shown once, hashed."""

import hashlib
import re

import pytest
from django.urls import reverse

from integrations.models import ApiToken, IntegrationToken
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db
TOKEN_RE = re.compile(r'<code id="new-token">([^<]+)</code>')


def test_endpoint_is_absolute_with_trailing_slash(owner_client, tenant, calls_integration):
    page = owner_client.get(reverse("integration_credentials", args=[tenant.slug, calls_integration.pk]))
    assert '<code id="endpoint">http://testserver/api/v1/data/calls/</code>' in page.content.decode()


def test_auth_token_shown_once_stored_as_hash_and_regeneration_revokes(owner_client, tenant, calls_integration):
    regenerate = reverse("integration_token_regenerate", args=[tenant.slug, calls_integration.pk])
    response = owner_client.post(regenerate)
    assert response["Cache-Control"] == "no-store"
    first = TOKEN_RE.search(response.content.decode()).group(1)
    row = IntegrationToken.objects.get(integration=calls_integration, revoked_at__isnull=True)
    assert row.token_hash == hashlib.sha256(first.encode()).hexdigest()
    assert first not in str(IntegrationToken.objects.values_list())  # never in clear

    # Shown afterwards only masked.
    page = owner_client.get(reverse("integration_credentials", args=[tenant.slug, calls_integration.pk])).content.decode()
    assert first not in page and row.masked in page

    second = TOKEN_RE.search(owner_client.post(regenerate).content.decode()).group(1)
    assert second != first
    assert IntegrationToken.objects.find(first) is None
    assert IntegrationToken.objects.find(second).integration == calls_integration
    assert list(AuditEvent.objects.filter(integration=calls_integration).values_list("action", flat=True)
                .order_by("id"))[-3:] == ["credential.issued", "credential.revoked", "credential.issued"]


def test_add_new_token_shown_once_listed_and_revoked(owner_client, tenant):
    page = owner_client.get(reverse("token_list", args=[tenant.slug])).content.decode()
    assert "No API tokens yet" in page
    response = owner_client.post(reverse("token_create", args=[tenant.slug]), {"name": "nightly", "scope": "read"})
    token = TOKEN_RE.search(response.content.decode()).group(1)
    assert "You will not be able to access this token again" in response.content.decode()
    row = ApiToken.objects.get(name="nightly")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and row.scope == "read"

    listing = owner_client.get(reverse("token_list", args=[tenant.slug])).content.decode()
    assert "nightly" in listing and token not in listing and "Read-only" in listing and "never" in listing

    owner_client.post(reverse("token_revoke", args=[tenant.slug, row.pk]))
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert ApiToken.objects.find(token) is None
    assert AuditEvent.objects.filter(action="token.revoked", target="API token 'nightly'").exists()


def test_token_name_required(owner_client, tenant):
    response = owner_client.post(reverse("token_create", args=[tenant.slug]), {"name": "", "scope": "read"})
    assert "This field is required." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_outsider_cannot_revoke_anothers_token(outsider_client, outsider, tenant, api_token):
    row = ApiToken.objects.get(tenant=tenant)
    own = outsider.memberships.get().tenant.slug
    assert outsider_client.post(reverse("token_revoke", args=[own, row.pk])).status_code == 404
    row.refresh_from_db()
    assert row.is_active


def test_file_upload_tokens_capped_at_five(tenant, owner):
    from django.core.exceptions import ValidationError

    from integrations import services

    for n in range(5):
        services.issue_api_token(tenant, owner, f"t{n}", kind=ApiToken.Kind.FILE_UPLOAD)
    with pytest.raises(ValidationError, match="5 active"):
        services.issue_api_token(tenant, owner, "t6", kind=ApiToken.Kind.FILE_UPLOAD)
    services.revoke_api_token(ApiToken.objects.filter(name="t0").get(), owner)
    services.issue_api_token(tenant, owner, "t6", kind=ApiToken.Kind.FILE_UPLOAD)


def test_token_lookup_rejects_forgeries(tenant, owner, api_token):
    prefix, _, secret = api_token.partition(".")
    assert ApiToken.objects.find(api_token) is not None
    assert ApiToken.objects.find(prefix + "." + secret[:-1] + "x") is None
    assert ApiToken.objects.find(secret) is None
    assert ApiToken.objects.find("") is None
