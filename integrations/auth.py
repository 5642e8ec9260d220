"""REST authentication: `Authorization: Token <token>` against hashed tokens.

Two kinds of token speak the same header (as the seeds do): an integration's AUTH_TOKEN on
the data endpoint (seed 000), and a Standard API token on /api/v3/ (seed 001).
"""

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions, permissions

from .models import ApiToken, IntegrationToken


class ApiPrincipal:
    """Who is calling: the token, its tenant, and words for the audit trail."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, token, tenant):
        self.token = token
        self.tenant = tenant

    def __str__(self):
        return str(self.token)

    def get_username(self):
        return str(self.token)


class HashedTokenAuthentication(authentication.TokenAuthentication):
    keyword = "Token"
    model = None

    def authenticate_credentials(self, key):
        token = self.find(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        token.touch()
        return ApiPrincipal(token, self.tenant_of(token)), token

    def find(self, key):
        return self.model.objects.select_related(*self.related).find(key)


class ApiTokenAuthentication(HashedTokenAuthentication):
    """Standard API tokens (Standard API Token Management)."""

    model = ApiToken
    related = ("tenant",)

    def find(self, key):
        token = super().find(key)
        return token if token and token.kind == ApiToken.Kind.STANDARD else None

    def tenant_of(self, token):
        return token.tenant


class IntegrationTokenAuthentication(HashedTokenAuthentication):
    """An inbound integration's AUTH_TOKEN (the Credentials tab)."""

    model = IntegrationToken
    related = ("integration__tenant",)

    def tenant_of(self, token):
        return token.integration.tenant


class ApiTokenScope(permissions.BasePermission):
    """Any active token may read; only a read-write token may change anything."""

    message = "This API token is read-only; use a read-write token to change anything."

    def has_permission(self, request, view):
        principal = request.user
        if not isinstance(principal, ApiPrincipal):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        token = principal.token
        return not isinstance(token, ApiToken) or token.can_write
