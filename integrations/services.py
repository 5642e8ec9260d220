"""What editors do to integrations and tokens. Views, the API and commands call these.

Each function does one user-level action in one transaction and records it in the audit
trail, so that every surface (page, REST, admin action, command) behaves the same.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from portal.audit import Action, record
from portal.models import Tenant

from .models import ApiToken, Integration, IntegrationToken
from .signals import sandbox_left

# The fields every integration has; anything else given to create/update is the protocol's own setting.
GENERIC_FIELDS = {"name", "direction", "protocol", "enabled", "endpoint_url", "max_attempts"}


def _split(fields):
    generic = {name: value for name, value in fields.items() if name in GENERIC_FIELDS}
    settings = dict(fields.pop("settings", None) or {})
    settings.update({name: value for name, value in fields.items() if name not in GENERIC_FIELDS | {"settings"}})
    return generic, settings


def _apply_settings(integration, settings, partial):
    protocol = integration.protocol_spec
    if integration.direction not in protocol.directions:
        raise ValidationError({"direction": f"The {protocol.short_label or protocol.label} protocol does not work "
                                            f"{integration.direction}."})
    cleaned, key = protocol.clean_settings(integration, settings, partial=partial)
    integration.settings, integration.key = cleaned, key


@transaction.atomic
def create_integration(tenant, actor, **fields):
    """A new integration starts in Sandbox Mode (seed 000), whatever it was given.

    Protocol settings may be given by name (data_type="calls") or as settings={…}; the
    protocol's settings form checks them.
    """
    credentials = fields.pop("credentials", None)
    metrics = fields.pop("metrics", [])
    fields.pop("sandbox", None)
    generic, settings = _split(fields)
    integration = Integration(tenant=tenant, **generic)
    integration.sandbox = True
    integration.protocol_spec  # an unknown protocol is refused here, with its name  # noqa: B018
    _apply_settings(integration, settings, partial=False)
    integration.full_clean()
    if not integration.is_inbound:
        missing = [spec.label for spec in integration.protocol_spec.vault_fields
                   if spec.required and not (credentials or {}).get(spec.name)]
        if missing:
            raise ValidationError({"credentials": f"An outbound integration needs {', '.join(missing)}: "
                                                  "the secrets the vendor issued you."})
    elif credentials:
        raise ValidationError({"credentials": "Inbound integrations get their credentials from the portal "
                                              "(Credentials tab); credentials are for outbound ones."})
    if credentials:
        integration.set_vendor_credentials(credentials)
    integration.full_clean()
    integration.save()
    for metric in metrics:
        _check_metric(integration, metric["source_key"])
        integration.metrics.create(**metric)
    record(tenant, actor, Action.INTEGRATION_CREATED, integration.name, integration,
           direction=integration.direction, protocol=integration.protocol)
    return integration


@transaction.atomic
def update_integration(integration, actor, changes, credentials=None):
    """Apply changes (generic fields and protocol settings; for outbound, replace the vendor credentials)."""
    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    changes = dict(changes)
    sandbox = changes.pop("sandbox", None)
    generic, settings = _split(changes)
    before = {**{name: getattr(integration, name) for name in GENERIC_FIELDS},
              **integration.protocol_spec.settings_of(integration)}
    for name, value in generic.items():
        setattr(integration, name, value)
    if settings:
        _apply_settings(integration, settings, partial=True)
    if credentials:
        integration.set_vendor_credentials(credentials)
    integration.full_clean()
    integration.save(force_update=True)  # an update, never an INSERT bringing a deleted row back
    after = {**{name: getattr(integration, name) for name in GENERIC_FIELDS},
             **integration.protocol_spec.settings_of(integration)}
    changed = sorted(name for name in after if after[name] != before.get(name))
    if changed:
        record(integration.tenant, actor, Action.INTEGRATION_CHANGED, integration.name, integration, fields=changed)
    if credentials:
        # Say that they changed, never what they are.
        record(integration.tenant, actor, Action.VENDOR_SECRET_REPLACED, integration.name, integration)
    if sandbox is not None:
        set_sandbox(integration, actor, sandbox)
    return integration


@transaction.atomic
def replace_vendor_credentials(integration, actor, credentials):
    """Replace an outbound integration's vendor credentials alone (audited, never shown). The rest
    is not checked again: a new token is not refused because this process's environment would
    refuse the integration's endpoint today."""
    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    integration.set_vendor_credentials(credentials)
    integration.save(update_fields=["vendor_credentials", "updated_at"])
    record(integration.tenant, actor, Action.VENDOR_SECRET_REPLACED, integration.name, integration)
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
        sandbox_left.send(sender=Integration, integration=integration, actor=actor)
    return integration


def _check_metric(integration, source_key):
    protocol = integration.protocol_spec
    if not protocol.has_metrics:
        raise ValidationError({"metrics": f"The {protocol.short_label or protocol.label} protocol has no metrics."})
    if source_key not in protocol.metric_source_keys(integration):
        raise ValidationError({"metrics": f"Source key “{source_key}” must be one of the field keys other than "
                                          "the user and date keys."})


@transaction.atomic
def add_metric(integration, actor, name, source_key, aggregation):
    _check_metric(integration, source_key)
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
    """Raises Integration.DoesNotExist when it is gone already. Takes the row lock first, as an
    update does, so that a change racing the delete either lands before it or finds nothing."""
    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    record(integration.tenant, actor, Action.INTEGRATION_DELETED, integration.name, None,
           protocol=integration.protocol, key=integration.key)
    integration.delete()


@transaction.atomic
def regenerate_integration_token(integration, actor):
    """Issue the protocol's credential anew and revoke the old one. Returns the plaintext, to show once."""
    issued = integration.protocol_spec.issued if integration.is_inbound else None
    if issued is None:
        raise ValidationError("Only inbound integrations have a credential issued by the portal.")
    for old in integration.tokens.active().filter(kind=issued.kind):
        old.revoke()
        record(integration.tenant, actor, Action.CREDENTIAL_REVOKED, old.masked, integration)
    row, token = IntegrationToken.issue(integration=integration, kind=issued.kind, created_by=_user(actor))
    record(integration.tenant, actor, Action.CREDENTIAL_ISSUED, row.masked, integration)
    return token


@transaction.atomic
def issue_api_token(tenant, actor, name, scope=ApiToken.Scope.READ, kind=ApiToken.Kind.STANDARD):
    """Returns (row, plaintext). File Upload API tokens are capped at 5 active (seed 003)."""
    if kind == ApiToken.Kind.FILE_UPLOAD:
        # The tenant's row is the lock (PostgreSQL): two creations at once count one after the
        # other, so that neither makes a 6th. (Locking the active tokens would not do: with none,
        # or with the other's new row unseen, both would count 4.) SQLite's IMMEDIATE transactions
        # serialize writers already.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        active = ApiToken.objects.filter(tenant=tenant, kind=kind).active().count()
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
