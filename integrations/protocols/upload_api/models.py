"""What the Upload API keeps: the OAuth client of an inbound integration, its submissions (one
per UploadData request, named by the request's Name, found by the processing token), the
datasets they form by Name, and the time and event records their rows became."""

import uuid

from django.db import models
from django.db.models.signals import post_delete
from django.dispatch import receiver
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings


def new_processing_token():
    return str(uuid.uuid4())


class UploadApiClient(models.Model):
    """An inbound integration's OAuth 2.0 client (a django-oauth-toolkit Application: confidential,
    client credentials, its secret stored hashed). A token of this client acts for this
    integration, and so for its tenant: nothing in a request body can name another."""

    integration = models.OneToOneField("integrations.Integration", on_delete=models.CASCADE,
                                       related_name="upload_api_client")
    application = models.OneToOneField(oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE,
                                       related_name="upload_api_client")
    created_at = models.DateTimeField(auto_now_add=True)
    secret_issued_at = models.DateTimeField(help_text="When the current client secret was issued")

    class Meta:
        verbose_name = "Upload API client"

    def __str__(self):
        return f"Upload API client {self.client_id} of {self.integration}"

    @property
    def client_id(self):
        return self.application.client_id


@receiver(post_delete, sender=UploadApiClient)
def _delete_application(sender, instance, **kwargs):
    """The client goes with its integration, and with it every token it was given (by filter: when
    the application itself was deleted, there is nothing left to fetch)."""
    get_application_model().objects.filter(pk=instance.application_id).delete()


class Dataset(models.Model):
    """The submissions of one Name: the records of the last one processed without errors are live."""

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="upload_api_datasets")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE,
                                    related_name="upload_api_datasets")
    name = models.CharField(max_length=200)
    live = models.ForeignKey("Submission", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                             help_text="The submission whose records are the dataset's now")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["integration", "name"], name="upload_api_one_dataset_per_name")]

    def __str__(self):
        return self.name


class Submission(models.Model):
    """One UploadData request (or a file sent from the upload form), its Upload and its processing token."""

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="upload_api_submissions")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE,
                                    related_name="upload_api_submissions")
    upload = models.OneToOneField("uploads.Upload", on_delete=models.CASCADE, related_name="upload_api_submission")
    token = models.CharField("processing token", max_length=36, unique=True, default=new_processing_token,
                             editable=False)
    name = models.CharField(max_length=200)
    overwrite = models.BooleanField(default=False)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="submissions")
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    help_text="The later submission of the same Name whose records replaced these")
    client_id = models.CharField(max_length=255, blank=True, help_text="The OAuth client that sent it")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} ({self.token})"


class Record(models.Model):
    """What one CSV row became: whose (the Reference, and the account when it is an email) and when."""

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="%(class)ss")
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="%(class)ss")
    row = models.PositiveIntegerField(help_text="1-based data row of its CSV (a header row is not counted)")
    reference = models.CharField(max_length=200)
    account = models.ForeignKey("uploads.Account", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+", help_text="When the Reference is an email")
    start = models.DateTimeField(help_text="As written (DD/MM/YYYY hh:mm), read as UTC")
    end = models.DateTimeField(help_text="As written (DD/MM/YYYY hh:mm), read as UTC")

    class Meta:
        abstract = True
        ordering = ["-id"]


class TimeRecord(Record):
    """A row of a submission's Data."""

    class Meta(Record.Meta):
        indexes = [models.Index(fields=["submission", "row"]), models.Index(fields=["integration", "-id"])]

    def __str__(self):
        return f"{self.reference} {self.start:%Y-%m-%d %H:%M}–{self.end:%Y-%m-%d %H:%M}"


class EventRecord(Record):
    """A row of a submission's EventData."""

    description = models.TextField()
    time_reference = models.PositiveSmallIntegerField(help_text="0, 1 or 2, as sent")

    class Meta(Record.Meta):
        indexes = [models.Index(fields=["submission", "row"]), models.Index(fields=["integration", "-id"])]

    def __str__(self):
        return f"{self.reference}: {self.description[:50]}"
