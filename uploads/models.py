"""Accounts data is attributed to, uploads from every channel, and the values they produce."""

import itertools
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from portal.models import Tenant


class Group(models.Model):
    """A team of accounts (reference 001's groups): its id is the Group ID the score APIs name it by."""

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=200)
    # Members are Account.groups; managers lead the group (they need not be members).
    managers = models.ManyToManyField("Account", blank=True, related_name="managed_groups")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="group_name_unique")]

    def __str__(self):
        return self.name

    @property
    def group_id(self):
        """The Group ID of reference 001: what score rows give as the EntityID of a group."""
        return str(self.pk)


USERNAME_PATTERN = r"^[\w.@+-]+$"  # as Django's own usernames: letters, digits and @ . + - _


class Account(models.Model):
    """A person data is attributed to (seed 000: "All data … must be attributable to a user").

    Reference 001 names individuals and managers by their username (the EntityID of a score):
    unique per tenant, derived from the email when none is given. Accounts that processing
    creates in bulk (bulk_create skips save()) get theirs from fill_usernames().
    """

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="accounts")
    email = models.CharField(max_length=254)  # lower-cased on the way in
    username = models.CharField(
        max_length=150, blank=True, validators=[RegexValidator(USERNAME_PATTERN, "Letters, digits and @ . + - _ only.")],
        help_text="The EntityID of this person's scores; unique in the tenant. Left blank, it is made from the email.")
    groups = models.ManyToManyField(Group, blank=True, related_name="accounts")
    manager = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "email"], name="account_email_unique"),
            # Blank only between a bulk insert and fill_usernames(), in the same transaction.
            models.UniqueConstraint(fields=["tenant", "username"], condition=~models.Q(username=""),
                                    name="account_username_unique"),
        ]

    def __str__(self):
        return self.email

    def clean(self):
        self.email = (self.email or "").strip().lower()
        manager = self.manager
        if manager is None:
            return
        if manager.tenant_id != self.tenant_id:
            raise ValidationError({"manager": "The manager must be an account of the same tenant."})
        seen = {self.pk} if self.pk else set()
        while manager is not None:  # a chain of managers must end: nobody manages their own manager
            if manager.pk in seen or manager is self:
                raise ValidationError({"manager": f"{manager} cannot manage {self}: {self} is above them."})
            seen.add(manager.pk)
            manager = manager.manager

    def save(self, *args, **kwargs):
        if not self.username:
            self.username = self.free_username(self.tenant_id, self.email, exclude=self.pk)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "username"}
        super().save(*args, **kwargs)

    @staticmethod
    def username_candidates(email):
        """Usernames made from an email, best first: its local part, the email, then numbered."""
        email = (email or "").strip().lower()
        local = re.sub(r"[^\w.+-]", "", email.split("@", 1)[0])[:140] or "user"
        yield local
        if re.fullmatch(USERNAME_PATTERN, email) and len(email) <= 150:
            yield email
        for number in itertools.count(2):
            yield f"{local}-{number}"

    @classmethod
    def free_username(cls, tenant_id, email, exclude=None, taken=None):
        """The first username made from the email that no other account of the tenant has."""
        if taken is None:
            others = cls.objects.filter(tenant_id=tenant_id)
            if exclude:
                others = others.exclude(pk=exclude)
            candidates = list(itertools.islice(cls.username_candidates(email), 3))
            local = candidates[0]
            taken = {name.lower() for name in others.filter(
                models.Q(username__in=candidates) | models.Q(username__startswith=f"{local}-")
            ).values_list("username", flat=True)}
        return next(name for name in cls.username_candidates(email) if name.lower() not in taken)

    @staticmethod
    def lock_for_new(tenant_id):
        """Hold the tenant's row, to the end of the transaction, before inserting its new accounts.

        Accounts are the tenant's, shared by all its integrations, whose processing runs side by
        side in transactions that last a batch. Two of them inserting some of the same new emails
        in different orders each waited for the other's uncommitted row, and PostgreSQL failed one
        upload as a deadlock (seen under load, with two integrations of one tenant). Under this
        lock new accounts go in one transaction at a time. FOR NO KEY UPDATE: rows that merely
        point at the tenant (uploads, the request log) are stored meanwhile.
        """
        list(Tenant.objects.select_for_update(no_key=True).filter(pk=tenant_id).values_list("pk", flat=True))

    @classmethod
    def create_missing(cls, tenant_id, emails):
        """Accounts for emails the tenant has none for (processing's "create the account"), under
        lock_for_new; an email that has one meanwhile is skipped."""
        cls.lock_for_new(tenant_id)
        cls.objects.bulk_create([cls(tenant_id=tenant_id, email=email) for email in emails], ignore_conflicts=True,
                                batch_size=2000)  # 8,000 parameters a statement, under SQLite's cap

    @classmethod
    def fill_usernames(cls, tenant_id):
        """Give a username to the tenant's accounts that have none (created in bulk); returns how many."""
        blank = list(cls.objects.filter(tenant_id=tenant_id, username="").order_by("id"))
        if not blank:
            return 0
        taken = {name.lower() for name in cls.objects.filter(tenant_id=tenant_id).exclude(username="")
                 .values_list("username", flat=True)}
        for account in blank:
            account.username = cls.free_username(tenant_id, account.email, taken=taken)
            taken.add(account.username.lower())
        cls.objects.bulk_update(blank, ["username"], batch_size=1000)
        return len(blank)


def upload_path(upload, filename):
    return f"uploads/{upload.tenant_id}/{upload.integration_id}/{filename}"


class Upload(models.Model):
    """One submission, from any channel, and what became of it."""

    class Channel(models.TextChoices):
        API = "api", "API"
        WEB = "web", "Web form"
        PRESIGNED = "presigned", "Presigned PUT"
        UPLOAD_DATA = "upload_data", "UploadData"
        IMPORT = "import", "Import"

    class Status(models.TextChoices):
        # inbound
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        WAITING = "waiting", "Waiting behind a failed upload"
        SKIPPED = "skipped", "Skipped"
        PURGED = "purged", "Purged"
        # outbound
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        NOT_DELIVERED = "not_delivered", "Not delivered"
        DRY_RUN = "dry_run", "Dry run (Sandbox Mode)"

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="uploads")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="uploads")
    channel = models.CharField(max_length=12, choices=Channel.choices)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    submitted_via = models.CharField(max_length=200, blank=True, help_text="Which token or user sent it")
    sandbox = models.BooleanField(default=False, help_text="Was the integration in Sandbox Mode when it arrived")

    file = models.FileField(upload_to=upload_path, max_length=500, blank=True)
    # What the intake's check made of a large file, in its protocol's own format, so that
    # processing does not read the file again (integrations.registry.Checked.prepared); deleted
    # once the upload is processed.
    prepared = models.FileField(upload_to=upload_path, max_length=500, blank=True, editable=False)
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)

    status = models.CharField(max_length=14, choices=Status.choices, default=Status.QUEUED, db_index=True)
    records = models.PositiveIntegerField(default=0)
    values_written = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text='[{"id", "description", "row", "column"}]')
    message = models.CharField(max_length=500, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # When its processing task was last sent: a task lost on the way is sent again once this
    # is old (uploads.processing.requeue_stalled_uploads).
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # An integration's uploads still to be processed, in arrival order: what processing asks
            # before and after every upload (the next one, anything ahead of this one). Only the
            # pending ones are in it, so it stays small however long the history grows; through the
            # (integration) and (status) indexes the question took 3-4 ms with 50,000 uploads.
            models.Index(fields=["integration", "id"], name="upload_pending",
                         condition=models.Q(status__in=["waiting", "queued", "processing"])),
        ]

    def __str__(self):
        return f"Upload #{self.pk} to {self.integration}"

    def get_absolute_url(self):
        return reverse("upload_detail", args=[self.tenant.slug, self.pk])

    @property
    def duration_seconds(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def stored_files(self):
        """The files kept in storage for it: the file, and what its check prepared from it."""
        return [stored for stored in (self.file, self.prepared) if stored]


class MetricValue(models.Model):
    """(account, date, metric) → value: what processing an inbound upload produces."""

    # Writing values is the hot path of processing (hundreds of thousands per file), so the table
    # carries only what it needs. The database checks none of its foreign keys: each check is an
    # index lookup per new row at commit (measured at 1.0 s of a 45,000-value upload with five,
    # 0.4 s with metric and account alone). Only processing writes rows, holding the integration's
    # row lock (purge takes it too) and right after reading its metrics and resolving or creating
    # the tenant's accounts, so the ids it writes exist; deletes of tenants, integrations, metrics
    # and accounts still cascade here through Django, and deleting an upload clears `upload`.
    # Not caught any more: a metric or account deleted while an upload using it is processed
    # leaves that upload's values of it pointing at nothing (hidden from the API, which joins
    # both; gone with a purge or the integration). integration and metric need no index of their
    # own: (integration, date) and the unique (metric, account, date) lead with them. Every index
    # costs about 40 ms of writing 45,000 values, so tenant and upload have none: the tenant's
    # values are reached through its integrations (the API's list, and deleting a tenant, whose
    # integrations take their values with them, hence DO_NOTHING here); clearing `upload` when an
    # upload is deleted (the admin, or with its integration or tenant) reads the whole table.
    tenant = models.ForeignKey("portal.Tenant", on_delete=models.DO_NOTHING, related_name="metric_values",
                               db_index=False, db_constraint=False)
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE,
                                    related_name="metric_values", db_index=False, db_constraint=False)
    metric = models.ForeignKey("integrations.Metric", on_delete=models.CASCADE, related_name="values",
                               db_index=False, db_constraint=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="metric_values",
                                db_constraint=False)
    date = models.DateField()
    value = models.FloatField()
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="values",
                               db_index=False, db_constraint=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["date", "metric_id", "account_id"]
        constraints = [
            models.UniqueConstraint(fields=["metric", "account", "date"], name="one_value_per_account_date_metric")
        ]
        indexes = [models.Index(fields=["integration", "date"])]

    def __str__(self):
        return f"{self.metric.name} {self.account} {self.date}: {self.value}"


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
    upload = models.ForeignKey("Upload", on_delete=models.CASCADE, related_name="dispatches")
    # Not indexed: nothing looks dispatches up by status, and an unindexed status lets every
    # attempt's updates stay HOT (no index entries written).
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    # The number of the attempt last claimed; a task for attempt n runs only if this is n-1,
    # so a duplicated task never sends an attempt twice.
    attempts = models.PositiveSmallIntegerField(default=0)
    # Attempts that failed for a passing reason; the dispatch gives up at max_attempts of them.
    # ("Check again later" answers, such as a vendor still processing, are not failures.)
    failures = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    # What the protocol's client keeps between attempts: batches delivered, a processing token …
    progress = models.JSONField(default=dict, blank=True)
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
    # The integration that called; an exchange of an upload's dispatch also names both, a pull
    # (reading a vendor's API on a schedule) names neither.
    integration = models.ForeignKey("integrations.Integration", null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="call_logs")
    upload = models.ForeignKey("Upload", null=True, blank=True, on_delete=models.CASCADE, related_name="call_logs")
    dispatch = models.ForeignKey(Dispatch, null=True, blank=True, on_delete=models.CASCADE, related_name="calls")
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

    # When the exchange began: its row is written before the request goes out, and completed
    # when the answer is in, so that a worker killed mid-exchange leaves the request it made.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.method} {self.url} → {self.status_code or self.error_class}"

    @property
    def ok(self):
        return self.status_code is not None and 200 <= self.status_code < 300


class RequestLog(models.Model):
    """One request that reached a protocol's endpoint, accepted or not (uploads.request_log).

    Rejected requests leave a trace here and nowhere else: their bodies are not kept beyond a
    short excerpt. Requests without a valid credential are counted per minute and client
    address, not stored one by one, so an unauthenticated flood cannot fill the table.
    """

    tenant = models.ForeignKey("portal.Tenant", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="request_logs")
    integration = models.ForeignKey("integrations.Integration", null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="request_logs")
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="request_logs")
    protocol = models.CharField(max_length=32, blank=True)
    channel = models.CharField(max_length=12, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField()
    error_ids = models.JSONField(default=list, blank=True)
    message = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    excerpt = models.TextField(blank=True, help_text="The start of a rejected body, secrets redacted")
    count = models.PositiveIntegerField(default=1, help_text="Requests this row stands for (unauthenticated ones are counted)")
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"]), models.Index(fields=["integration", "-created_at"])]

    def __str__(self):
        return f"{self.method} {self.path} → {self.status_code}"

    @property
    def ok(self):
        return 200 <= self.status_code < 300
