"""What a REST source receives: feedback entries, each stored once per integration."""

from django.db import models


class FeedbackEntry(models.Model):
    """One entry of an import request's payload.

    The fingerprint identifies an entry by what it says (see entries.fingerprint), so that a
    client sending the same entries again, or a retried batch, stores nothing twice.
    """

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="feedback_entries")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE,
                                    related_name="feedback_entries")
    upload = models.ForeignKey("uploads.Upload", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="feedback_entries", help_text="The request that brought it first")
    source_id = models.CharField(max_length=100)
    date = models.DateTimeField(help_text="As sent, read as UTC")
    name = models.CharField(max_length=200)
    content = models.TextField()
    fingerprint = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-date", "-id"]
        verbose_name_plural = "feedback entries"
        constraints = [
            models.UniqueConstraint(fields=["integration", "fingerprint"], name="feedback_entry_once_per_integration"),
        ]
        # The Entries tab lists a source's newest entries.
        indexes = [models.Index(fields=["integration", "-date", "-id"], name="feedback_entry_newest")]

    def __str__(self):
        return f"{self.name} at {self.date:%Y-%m-%d %H:%M:%S}"
