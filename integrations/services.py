"""What editors do to integrations and tokens. Views, the API and commands call these.

Each function does one user-level action in one transaction and records it in the audit
trail, so that every surface (page, REST, admin action, command) behaves the same.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from portal.audit import Action, record

from .models import ApiToken, Integration, IntegrationToken

# Fields whose change is worth naming in the audit trail.
AUDITED_FIELDS = [
    "name", "enabled", "data_type", "data_format", "field_keys", "user_key", "date_key", "date_format",
    "flatten_json", "flatten_separator", "unknown_user", "endpoint_url", "max_attempts",
]


@transaction.atomic
def create_integration(tenant, actor, **fields):
    """A new integration starts in Sandbox Mode (seed 000), whatever it was given."""
    credentials = fields.pop("credentials", None)
    metrics = fields.pop("metrics", [])
    integration = Integration(tenant=tenant, **fields)
    integration.sandbox = True
    if credentials:
        integration.set_vendor_credentials(credentials)
    integration.full_clean()
    integration.save()
    for metric in metrics:
        integration.metrics.create(**metric)
    record(tenant, actor, Action.INTEGRATION_CREATED, integration.name, integration,
           direction=integration.direction, protocol=integration.protocol)
    return integration


@transaction.atomic
def update_integration(integration, actor, changes, credentials=None):
    """Apply field changes (and, for outbound, replace the vendor credentials)."""
    before = {name: getattr(integration, name) for name in AUDITED_FIELDS}
    sandbox = changes.pop("sandbox", None)
    for name, value in changes.items():
        setattr(integration, name, value)
    if credentials:
        integration.set_vendor_credentials(credentials)
    integration.full_clean()
    integration.save()
    changed = sorted(name for name in AUDITED_FIELDS if getattr(integration, name) != before[name])
    if changed:
        record(integration.tenant, actor, Action.INTEGRATION_CHANGED, integration.name, integration, fields=changed)
    if credentials:
        # Say that they changed, never what they are.
        record(integration.tenant, actor, Action.VENDOR_SECRET_REPLACED, integration.name, integration)
    if sandbox is not None:
        set_sandbox(integration, actor, sandbox)
    return integration


@transaction.atomic
def set_sandbox(integration, actor, enabled):
    if integration.sandbox == enabled:
        return integration
    integration.sandbox = enabled
    integration.save(update_fields=["sandbox", "updated_at"])
    record(integration.tenant, actor, Action.SANDBOX_ON if enabled else Action.SANDBOX_OFF,
           integration.name, integration)
    if not enabled:
        # Leaving sandbox: uploads that waited are now processed in arrival order.
        from uploads.processing import release_waiting_uploads

        transaction.on_commit(lambda: release_waiting_uploads(integration.pk))
    return integration


@transaction.atomic
def add_metric(integration, actor, name, source_key, aggregation):
    metric = integration.metrics.create(name=name, source_key=source_key, aggregation=aggregation)
    record(integration.tenant, actor, Action.INTEGRATION_CHANGED, integration.name, integration,
           fields=["metrics"], metric_added=name)
    return metric


@transaction.atomic
def delete_metric(metric, actor):
    """Delete a metric and its values. Takes the integration's lock, as processing and purge do,
    so that an upload being processed cannot leave values behind for a metric gone meanwhile."""
    integration = Integration.objects.select_for_update().get(pk=metric.integration_id)
    metric.delete()
    record(integration.tenant, actor, Action.INTEGRATION_CHANGED, integration.name, integration,
           fields=["metrics"], metric_deleted=metric.name)


@transaction.atomic
def delete_integration(integration, actor):
    record(integration.tenant, actor, Action.INTEGRATION_DELETED, integration.name, None,
           data_type=integration.data_type)
    integration.delete()


@transaction.atomic
def regenerate_integration_token(integration, actor):
    """Issue a new AUTH_TOKEN and revoke the old ones. Returns the plaintext, to show once."""
    if not integration.is_inbound:
        raise ValidationError("Only inbound integrations have a portal-issued AUTH_TOKEN.")
    for old in integration.tokens.active():
        old.revoke()
        record(integration.tenant, actor, Action.CREDENTIAL_REVOKED, old.masked, integration)
    row, token = IntegrationToken.issue(integration=integration, created_by=_user(actor))
    record(integration.tenant, actor, Action.CREDENTIAL_ISSUED, row.masked, integration)
    return token


@transaction.atomic
def issue_api_token(tenant, actor, name, scope=ApiToken.Scope.READ, kind=ApiToken.Kind.STANDARD):
    """Returns (row, plaintext). File Upload API tokens are capped at 5 active (seed 003)."""
    if kind == ApiToken.Kind.FILE_UPLOAD:
        active = ApiToken.objects.select_for_update().filter(tenant=tenant, kind=kind).active().count()
        if active >= ApiToken.MAX_ACTIVE_FILE_UPLOAD:
            raise ValidationError(
                f"This tenant already has {ApiToken.MAX_ACTIVE_FILE_UPLOAD} active File Upload API tokens; "
                "revoke one first."
            )
    row, token = ApiToken.issue(tenant=tenant, name=name, scope=scope, kind=kind, created_by=_user(actor))
    record(tenant, actor, Action.TOKEN_ISSUED, str(row), None, scope=scope, kind=kind, prefix=row.prefix)
    return row, token


@transaction.atomic
def revoke_api_token(token, actor):
    if token.is_active:
        token.revoke()
        record(token.tenant, actor, Action.TOKEN_REVOKED, str(token), None, prefix=token.prefix)
    return token


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None
