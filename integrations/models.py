"""Integrations, their metrics, and the secrets issued for them."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from . import vault
from .tokens import HashedToken


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound (the portal receives)"
    OUTBOUND = "outbound", "Outbound (the portal sends to a vendor)"


class Protocol(models.TextChoices):
    """The five reference protocols (shared/seeds), one module each in integrations/protocols/."""

    DATA_INTEGRATION = "data_integration", "Data integration (POST /api/v1/data/<data_type>/)"
    PUBLIC_API = "public_api", "Public API v3 (accounts, groups, scores)"
    UPLOAD_API = "upload_api", "Upload API (OAuth2, UploadData / GetResults)"
    FILE_UPLOAD = "file_upload", "File Upload API (presigned PUT)"
    SOURCE_IMPORT = "source_import", "Import endpoint (POST /api/v1/source/import)"


class DataFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSON = "json", "JSON"


# What users type (as in the seed's "8/16/2016") → what strptime reads.
DATE_FORMATS = {
    "M/D/YYYY": "%m/%d/%Y",
    "D/M/YYYY": "%d/%m/%Y",
    "YYYY-MM-DD": "%Y-%m-%d",
    "DD.MM.YYYY": "%d.%m.%Y",
    "YYYY/MM/DD": "%Y/%m/%d",
}


class Integration(models.Model):
    class UnknownUser(models.TextChoices):
        CREATE = "create", "Create the account"
        REJECT = "reject", "Reject the upload"

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="integrations")
    name = models.CharField(max_length=200)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.INBOUND)
    protocol = models.CharField(max_length=20, choices=Protocol.choices, default=Protocol.DATA_INTEGRATION)
    data_type = models.CharField(
        max_length=64,
        validators=[RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "Lower-case letters, digits, '-' and '_' only.")],
        help_text="The DATA_TYPE in the endpoint: /api/v1/data/<data_type>/",
    )
    enabled = models.BooleanField(default=True)
    sandbox = models.BooleanField("Sandbox Mode", default=True)

    # Data Format tab
    data_format = models.CharField(max_length=4, choices=DataFormat.choices, default=DataFormat.CSV)
    field_keys = models.JSONField(default=list, blank=True, help_text="CSV headers or JSON keys the file must contain")
    user_key = models.CharField(max_length=100, default="email", help_text="The field key that names the user")
    date_key = models.CharField(max_length=100, default="date", help_text="The field key that holds the date")
    date_format = models.CharField(
        max_length=20, choices=[(k, k) for k in DATE_FORMATS], default="M/D/YYYY"
    )
    flatten_json = models.BooleanField("Flatten nested JSON", default=True)
    flatten_separator = models.CharField(max_length=3, default=".", blank=True)
    unknown_user = models.CharField(max_length=10, choices=UnknownUser.choices, default=UnknownUser.CREATE)

    # Outbound: where and how to call the vendor
    endpoint_url = models.URLField("Vendor endpoint", max_length=500, blank=True)
    vendor_credentials = models.TextField(blank=True, editable=False, help_text="Fernet ciphertext; never shown")
    max_attempts = models.PositiveSmallIntegerField(default=5)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "direction", "data_type"], name="one_data_type_per_direction")
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("integration_settings", args=[self.tenant.slug, self.pk])

    @property
    def is_inbound(self):
        return self.direction == Direction.INBOUND

    @property
    def strptime_format(self):
        return DATE_FORMATS[self.date_format]

    @property
    def endpoint_path(self):
        """The inbound ENDPOINT path, always with its trailing slash (seed 000)."""
        return reverse("data_upload", args=[self.data_type])

    def endpoint(self, request=None):
        """The ENDPOINT shown on the Credentials tab: absolute, trailing slash."""
        if request is not None:
            return request.build_absolute_uri(self.endpoint_path)
        return settings.PORTAL_BASE_URL.rstrip("/") + self.endpoint_path

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
    """An inbound integration's AUTH_TOKEN (seed 000 "Credentials"). One active at a time."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="tokens")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"AUTH_TOKEN {self.masked} for {self.integration}"


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


# --- Outbound dispatch ------------------------------------------------------------------


class Dispatch(models.Model):
    """One attempt series sending an upload to a vendor (a Resend starts another)."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for its next attempt"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Not delivered"
        DRY_RUN = "dry_run", "Dry run (Sandbox Mode)"

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="dispatches")
    upload = models.ForeignKey("uploads.Upload", on_delete=models.CASCADE, related_name="dispatches")
    # Not indexed: nothing looks dispatches up by status, and an unindexed status lets every
    # attempt's updates stay HOT (no index entries written).
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    # The number of the attempt last claimed; a task for attempt n runs only if this is n-1,
    # so a duplicated task never sends an attempt twice.
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the current attempt was claimed: an attempt claimed longer ago than a lease (its
    # timeouts and a margin) belongs to a worker that died, and may be taken over.
    claimed_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.CharField(max_length=200, blank=True, help_text="Who sent or resent it")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"Dispatch #{self.pk} of upload #{self.upload_id}"

    @property
    def is_active(self):
        return self.status in (self.Status.WAITING, self.Status.SENDING)

    @property
    def status_label(self):
        """The status in words; a dispatch waiting for its first attempt is just queued."""
        if self.status == self.Status.WAITING and not self.attempts:
            return "Queued: a worker sends it shortly"
        return self.get_status_display()


class CallLog(models.Model):
    """One HTTP exchange with a vendor, secrets redacted before it is stored."""

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="call_logs")
    upload = models.ForeignKey("uploads.Upload", on_delete=models.CASCADE, related_name="call_logs")
    dispatch = models.ForeignKey(Dispatch, on_delete=models.CASCADE, related_name="calls")
    attempt = models.PositiveSmallIntegerField()
    dry_run = models.BooleanField(default=False)

    method = models.CharField(max_length=10)
    url = models.TextField()
    request_headers = models.JSONField(default=dict)
    request_body_size = models.BigIntegerField(default=0)
    request_body_sha256 = models.CharField(max_length=64, blank=True)
    request_body_excerpt = models.TextField(blank=True, help_text="The start of the body, redacted")

    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_excerpt = models.TextField(blank=True, help_text="At most 64 KB of the response, redacted")
    duration_ms = models.PositiveIntegerField(default=0)
    error_class = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    retry_in_seconds = models.FloatField(null=True, blank=True, help_text="When the attempt is retried: after how long")

    # When the exchange began (rows are written together at the end of their attempt).
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.method} {self.url} → {self.status_code or self.error_class}"

    @property
    def ok(self):
        return self.status_code is not None and 200 <= self.status_code < 300
