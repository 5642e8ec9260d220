"""The credentials of an inbound Upload API integration, and how its requests are authenticated.

Two, both on the Credentials tab, both shown once:
- its OAuth 2.0 client: a django-oauth-toolkit Application (confidential, client credentials),
  whose secret DOT stores hashed (`hash_client_secret`); its tokens are stored as hashes too
  (OAUTH2_PROVIDER["COMPLIANT_BCP_RFC9700_TOKEN_STORAGE"]);
- its API key, the "Key" every request carries: the registry's issued credential, an
  IntegrationToken stored as a hash.

A bearer token names its client, the client its integration, the integration its tenant:
nothing a request body says can point anywhere else.
"""

from functools import cache

from django.db import transaction
from django.utils import timezone
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_access_token_model, get_application_model
from oauth2_provider.oauth2_backends import OAuthLibCore
from rest_framework import exceptions

from integrations.auth import ApiPrincipal
from integrations.models import IntegrationToken
from integrations.registry import IssuedCredential
from portal.audit import Action, record

from .models import UploadApiClient

PROTOCOL = "upload_api"
SCOPE = "platform_upload_api"
API_KEY = IssuedCredential(kind="upload_api_key", label="API key",
                           how_sent='"Key" in the UploadData body; key= on GetResults')


@transaction.atomic
def issue_client_secret(integration, actor):
    """Give the integration its OAuth client, or a new secret for the one it has (tokens issued
    with the old one stop working at once). Returns (client id, secret): the secret is shown
    once, DOT keeps only its hash."""
    Application = get_application_model()
    secret = generate_client_secret()
    client = (UploadApiClient.objects.select_for_update().select_related("application")
              .filter(integration=integration).first())
    if client is None:
        application = Application.objects.create(
            name=f"{integration.tenant.slug}: {integration.name}"[:255], user=None,
            client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret, hash_client_secret=True,
        )
        client = UploadApiClient.objects.create(integration=integration, application=application,
                                                secret_issued_at=timezone.now())
    else:
        application = client.application
        application.client_secret = secret  # hashed by DOT as it is saved
        application.save(update_fields=["client_secret", "updated"])
        revoked, _ = get_access_token_model().objects.filter(application=application).delete()
        client.secret_issued_at = timezone.now()
        client.save(update_fields=["secret_issued_at"])
        record(integration.tenant, actor, Action.CREDENTIAL_REVOKED, f"OAuth client secret of {application.client_id}",
               integration, tokens_revoked=revoked)
    record(integration.tenant, actor, Action.CREDENTIAL_ISSUED, f"OAuth client secret of {application.client_id}",
           integration)
    return application.client_id, secret


def client_of(integration):
    return UploadApiClient.objects.select_related("application").filter(integration=integration).first()


def is_api_key(integration, key):
    """Whether `key` is the integration's active API key (compared as hashes, in constant time)."""
    token = IntegrationToken.objects.filter(integration=integration, kind=API_KEY.kind).find(key)
    if token is None:
        return False
    token.touch()
    return True


class UploadApiPrincipal(ApiPrincipal):
    """Who calls the Upload API: a client's bearer token, the integration and tenant it acts for."""

    def __init__(self, token, client):
        super().__init__(token, client.integration.tenant)
        self.client = client
        self.integration = client.integration

    @property
    def client_id(self):
        return self.client.client_id

    def __str__(self):
        return f"Upload API client {self.client_id}"

    def get_username(self):
        return str(self)


class HeaderBearerCore(OAuthLibCore):
    """Resource requests: the bearer token is read from the Authorization header only, and the
    body (a submission of up to 15 MB, read by the view under its own cap) is left alone."""

    def extract_body(self, request):
        return []


@cache
def _bearer_core():
    return HeaderBearerCore()


class BearerAuthentication(OAuth2Authentication):
    """DOT's DRF authentication, for the Upload API's clients: `Authorization: Bearer <token>`.

    An unknown, expired or revoked token is not authenticated (401, with DOT's Bearer
    challenge); the scope is the view's permission (TokenHasScope: 403 without it).
    """

    www_authenticate_realm = "upload-api"

    def authenticate(self, request):
        valid, oauth = _bearer_core().verify_request(request._request, scopes=[])
        if not valid:
            request.oauth2_error = getattr(oauth, "oauth2_error", {}) if oauth is not None else {}
            return None
        token = oauth.access_token
        client = (UploadApiClient.objects.select_related("application", "integration__tenant")
                  .filter(application_id=token.application_id).first())
        if client is None:
            raise exceptions.AuthenticationFailed("This token was not issued to an Upload API client.")
        token.integration = client.integration  # as an issued credential names it (the request log reads it)
        return UploadApiPrincipal(token, client), token
