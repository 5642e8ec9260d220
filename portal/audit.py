"""Recording audit events: one function, called by the services that change things."""

from django.contrib.auth.base_user import AbstractBaseUser

from .models import AuditEvent

Action = AuditEvent.Action


def actor_label(actor):
    """A user, an API token, or None (the system) as words for the trail."""
    if actor is None:
        return "system"
    if getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return str(actor)


def register_action(action, label):
    """An action a protocol records, and what the activity page and the admin call it."""
    AuditEvent.more_actions[action] = label
    return action


def record(tenant, actor, action, target="", integration=None, **detail):
    # Only a real user goes in the FK; an API token (ApiPrincipal) is named by its label.
    user = actor if isinstance(actor, AbstractBaseUser) else None
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=user,
        actor_label=actor_label(actor),
        action=action,
        target=str(target)[:200],
        integration=integration,
        detail=detail,
    )
