"""Tenants, the people in them, and the audit trail of what they did."""

from django.conf import settings
from django.db import models


class Tenant(models.Model):
    """An organisation: the seeds' "instance" (SUBDOMAIN). Every other row belongs to one."""

    slug = models.SlugField(unique=True, help_text="Used in URLs: /t/<slug>/")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        EDITOR = "editor", "Integrations: Edit"
        VIEWER = "viewer", "Viewer"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_tenant")]

    def __str__(self):
        return f"{self.user} in {self.tenant} ({self.get_role_display()})"

    @property
    def can_edit(self):
        """'Integrations: Edit': create, edit, delete, toggle sandbox, purge, issue tokens."""
        return self.role in (self.Role.OWNER, self.Role.EDITOR)


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        INTEGRATION_CREATED = "integration.created", "Integration created"
        INTEGRATION_CHANGED = "integration.changed", "Integration changed"
        INTEGRATION_DELETED = "integration.deleted", "Integration deleted"
        SANDBOX_ON = "sandbox.enabled", "Sandbox Mode enabled"
        SANDBOX_OFF = "sandbox.disabled", "Sandbox Mode disabled"
        PURGED = "integration.purged", "All data purged"
        CREDENTIAL_ISSUED = "credential.issued", "Integration token issued"
        CREDENTIAL_REVOKED = "credential.revoked", "Integration token revoked"
        VENDOR_SECRET_REPLACED = "credential.vendor_replaced", "Vendor credentials replaced"
        TOKEN_ISSUED = "token.issued", "API token issued"
        TOKEN_REVOKED = "token.revoked", "API token revoked"
        UPLOAD_RETRIED = "upload.retried", "Upload retried"
        UPLOAD_SKIPPED = "upload.skipped", "Upload skipped"
        UPLOAD_RESENT = "upload.resent", "Upload resent"
        UPLOAD_SENT_NOW = "upload.sent_now", "Upload sent now"
        UPLOAD_CANCELLED = "upload.cancelled", "Upload cancelled"

    # Actions a later layer records (a protocol's own, "file.received"), with their labels: added
    # by portal.audit.register_action, since this layer cannot know them.
    more_actions = {}

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Who, in words that survive the user or token being deleted: "alice", "API token 'ci'".
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=40, choices=Action.choices)
    # What it was done to, by name, so that the trail survives deletion of the thing.
    target = models.CharField(max_length=200, blank=True)
    integration = models.ForeignKey(
        "integrations.Integration", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action_label} {self.target}"

    @classmethod
    def action_choices(cls):
        return [*cls.Action.choices, *cls.more_actions.items()]

    @property
    def action_label(self):
        """What the action is called; one nobody registered reads as its words ("upload sent now")."""
        labels = dict(self.action_choices())
        return labels.get(self.action) or self.action.replace(".", " ").replace("_", " ").capitalize()
