"""Integrations, their metrics, and the secrets issued for them."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from . import destinations, registry, vault
from .tokens import HashedToken


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound (the portal receives)"
    OUTBOUND = "outbound", "Outbound (the portal sends to a vendor)"


class Integration(models.Model):
    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="integrations")
    name = models.CharField(max_length=200)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.INBOUND)
    protocol = models.CharField(max_length=32, default="data_integration",
                                help_text="One of the protocols in the registry (integrations/registry.py)")
    # The name the protocol's endpoint knows the integration by, where it has one: the data
    # type of /api/v1/data/<data_type>/, the source_id of an import source. Unique per tenant,
    # protocol and direction.
    key = models.CharField(max_length=100, blank=True)
    # The protocol's own settings, validated by its settings form (integrations.registry).
    settings = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    sandbox = models.BooleanField("Sandbox Mode", default=True)

    # Outbound: where and how to call the vendor
    endpoint_url = models.URLField("Vendor endpoint", max_length=500, blank=True)
    vendor_credentials = models.TextField(blank=True, editable=False, help_text="Fernet ciphertext; never shown")
    max_attempts = models.PositiveSmallIntegerField(default=5)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "protocol", "direction", "key"], condition=~models.Q(key=""),
                                    name="one_key_per_protocol_and_direction")
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("integration_settings", args=[self.tenant.slug, self.pk])

    @property
    def is_inbound(self):
        return self.direction == Direction.INBOUND

    def clean(self):
        """The rules every surface shares (pages, the REST API, the admin, commands)."""
        try:
            spec = registry.get(self.protocol)
        except ValidationError as exc:
            raise ValidationError({"protocol": exc.messages}) from None
        if self.direction not in spec.directions:
            raise ValidationError({"direction": f"The {spec.short_label or spec.label} protocol does not work "
                                                f"{self.direction}."})
        if self.is_inbound:
            if self.endpoint_url:
                raise ValidationError({"endpoint_url": "An inbound integration's endpoint is the portal's own; "
                                                       "it cannot be set."})
        elif not self.endpoint_url:
            raise ValidationError({"endpoint_url": "An outbound integration needs the vendor's endpoint."})
        else:
            try:
                destinations.check_url(self.endpoint_url)
            except destinations.RefusedDestination as exc:
                raise ValidationError({"endpoint_url": str(exc)}) from None

    @property
    def protocol_spec(self):
        """What the protocol declares (integrations.registry.Protocol)."""
        return registry.get(self.protocol)

    @property
    def protocol_label(self):
        return registry.label(self.protocol)

    @property
    def extra_tabs(self):
        """The protocol's own tabs on this integration's pages: [(label, url name)]."""
        return self.protocol_spec.integration_tabs(self)

    @property
    def endpoint_path(self):
        """The inbound endpoint's path, or "" when the protocol has none of its own."""
        return self.protocol_spec.endpoint_path(self) if self.is_inbound else ""

    def endpoint(self, request=None):
        """The endpoint shown on the Credentials tab, absolute."""
        path = self.endpoint_path
        if not path:
            return ""
        if request is not None:
            return request.build_absolute_uri(path)
        return settings.PORTAL_BASE_URL.rstrip("/") + path

    # Vendor credentials: write-only from the outside.
    @property
    def has_vendor_credentials(self):
        return bool(self.vendor_credentials)

    def set_vendor_credentials(self, secrets):
        self.vendor_credentials = vault.encrypt(secrets) if secrets else ""

    def read_vendor_credentials(self):
        """Only the outbound client calls this, right before it calls the vendor."""
        return vault.decrypt(self.vendor_credentials)


class Metric(models.Model):
    class Aggregation(models.TextChoices):
        SUM = "sum", "Sum"
        COUNT = "count", "Count of records"
        MAX = "max", "Maximum"
        MIN = "min", "Minimum"
        LAST = "last", "Last value received"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=100)
    source_key = models.CharField(max_length=100, help_text="The field key the values come from")
    aggregation = models.CharField(max_length=10, choices=Aggregation.choices, default=Aggregation.SUM)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["integration", "name"], name="metric_name_unique")]

    def __str__(self):
        return f"{self.name} ({self.get_aggregation_display()} of {self.source_key})"


class IntegrationToken(HashedToken):
    """A credential the portal issued for an inbound integration (its protocol says which kind:
    seed 000's AUTH_TOKEN, an import source's API key …). One active per kind at a time."""

    kind = models.CharField(max_length=32, default="auth_token")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="tokens")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} {self.masked} for {self.integration}"


class ApiToken(HashedToken):
    """A named token for the public API (seed 001) or the File Upload API (seed 003)."""

    class Scope(models.TextChoices):
        READ = "read", "Read-only"
        READ_WRITE = "read_write", "Read-write"

    class Kind(models.TextChoices):
        STANDARD = "standard", "Standard API"
        FILE_UPLOAD = "file_upload", "File Upload API"

    MAX_ACTIVE_FILE_UPLOAD = 5  # seed 003: "up to 5 active API tokens"

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.STANDARD)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"API token '{self.name}'"

    @property
    def can_write(self):
        return self.scope == self.Scope.READ_WRITE
