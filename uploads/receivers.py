"""What uploads do when the configuration layer announces a change (integrations.signals)."""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from integrations.signals import sandbox_left

from . import processing
from .models import Upload


@receiver(sandbox_left)
def release_after_sandbox(sender, integration, **kwargs):
    """Leaving Sandbox Mode: uploads that waited are processed in arrival order."""
    transaction.on_commit(lambda: processing.release_next_upload(integration.pk))


@receiver(post_delete, sender=Upload)
def delete_stored_file(sender, instance, **kwargs):
    """An upload deleted (with its integration or tenant) takes its stored files along, once committed."""
    for stored in instance.stored_files:
        transaction.on_commit(partial(stored.storage.delete, stored.name))
