"""What the File Upload API keeps: which tokens feed a data integration, the permissions to send
one file each (step 1) and what became of them (step 2), and the notices of files received."""

from django.db import models


class TokenLink(models.Model):
    """A File Upload API token whose CSV or JSON files are processed into an inbound data
    integration (reference 000), as that integration's own uploads would be."""

    token = models.OneToOneField("integrations.ApiToken", on_delete=models.CASCADE, related_name="file_upload_link")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE,
                                    related_name="file_upload_links")

    def __str__(self):
        return f"{self.token} → {self.integration}"


class FileSlot(models.Model):
    """Permission to send one file (step 1: its id and URL), and what became of it (step 2)."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for the file"
        RECEIVING = "receiving", "Receiving"
        RECEIVED = "received", "Received"
        EXPIRED = "expired", "Expired unused"
        REFUSED = "refused", "Refused"

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="file_slots")
    token = models.ForeignKey("integrations.ApiToken", on_delete=models.CASCADE, related_name="file_slots")
    # Who sends, in words that outlive the token: its description and prefix.
    sent_by = models.CharField(max_length=200)
    # The tenant's File Upload API integration: the file is one of its uploads.
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="file_slots")
    # The data integration the token was linked to when the URL was issued (null: none, or deleted since).
    process_into = models.ForeignKey("integrations.Integration", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    linked = models.BooleanField(default=False, help_text="Was the token linked to a data integration")
    filename = models.CharField(max_length=255, help_text="The base name the client gave")
    content_type = models.CharField(max_length=100, blank=True)
    # S3: the key the presigned PUT writes to; blank when the portal receives the PUT itself.
    storage_key = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    # While a PUT is being received: refreshed as it goes, so that a receiver that died is noticed.
    claimed_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    upload = models.OneToOneField("uploads.Upload", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="file_slot")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self):
        return f"File #{self.pk} {self.filename} ({self.get_status_display()})"


class Notification(models.Model):
    """Reference 003: "our team will receive a notification that your file has been received".
    Shown to the tenant's admins in the portal and emailed to them."""

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="file_notifications")
    upload = models.ForeignKey("uploads.Upload", on_delete=models.CASCADE, related_name="file_notifications")
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    emailed_to = models.PositiveIntegerField(default=0, help_text="How many admins the email went to")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.message
