"""File Upload API tokens: issued (at most 5 active per tenant, integrations.services), and linked
to the data integration their files are processed into."""

from django.core.exceptions import ValidationError
from django.db import transaction

from integrations import services
from integrations.models import ApiToken
from portal.audit import record

from .forms import DATA_INTEGRATION
from .models import TokenLink
from .slots import receiving_integration

TOKEN_LINKED = "token.linked"  # the audit trail's action


@transaction.atomic
def issue(tenant, actor, name, process_into=None):
    """(row, plaintext): the plaintext is shown once and never stored. Refused with a
    ValidationError (saying to revoke one) when the tenant has 5 active File Upload API tokens."""
    receiving_integration(tenant, actor)  # where the files go, from the first token on
    row, token = services.issue_api_token(tenant, actor, name, kind=ApiToken.Kind.FILE_UPLOAD)
    if process_into is not None:
        link(row, process_into, actor)
    return row, token


@transaction.atomic
def link(token, integration, actor):
    """Process the token's files into `integration` (an inbound data integration), or into
    nothing (None). Applies to URLs issued from now on."""
    if integration is not None and (integration.tenant_id != token.tenant_id or integration.protocol != DATA_INTEGRATION
                                    or not integration.is_inbound):
        raise ValidationError("A token's files can only be processed into an inbound data integration of its tenant.")
    if integration is None:
        TokenLink.objects.filter(token=token).delete()
    else:
        TokenLink.objects.update_or_create(token=token, defaults={"integration": integration})
    record(token.tenant, actor, TOKEN_LINKED, str(token), integration, prefix=token.prefix,
           process_into=integration.name if integration else None)
