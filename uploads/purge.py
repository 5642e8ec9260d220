"""Purge All Data (seed 000): only in Sandbox Mode; deletes what processing produced and the stored files."""

from django.core.exceptions import ValidationError
from django.db import transaction

from integrations.models import Integration
from portal.audit import Action, record

from .models import Upload


def purge_integration(integration, actor):
    """Delete what processing produced (the protocol says what: metric values, feedback entries …)
    and the integration's uploads' stored files.

    The integration row is locked for the purge, and processing takes the same lock, so an
    upload that arrives meanwhile is either purged whole or processed whole after it. Only
    uploads that had arrived when the purge began are touched. Upload rows stay, marked
    purged, so that the history still says what happened. Returns counts.
    """
    with transaction.atomic():
        locked = Integration.objects.select_for_update().get(pk=integration.pk)
        if not locked.sandbox:
            raise ValidationError("Purge All Data is only available in Sandbox Mode.")
        uploads = Upload.objects.filter(integration=locked).exclude(status=Upload.Status.PURGED)
        last_id = uploads.order_by("-id").values_list("id", flat=True).first() or 0
        uploads = uploads.filter(id__lte=last_id)
        files = [name for name in uploads.exclude(file="").values_list("file", flat=True)]
        prepared = [name for name in uploads.exclude(prepared="").values_list("prepared", flat=True)]
        values_deleted = locked.protocol_spec.purge(locked)
        uploads_purged = uploads.update(status=Upload.Status.PURGED, file="", prepared="")
        record(locked.tenant, actor, Action.PURGED, locked.name, locked,
               values=values_deleted, uploads=uploads_purged, files=len(files))

        # Files go only once the rows no longer point at them, and only if the purge commits.
        def delete_files():
            storage = Upload._meta.get_field("file").storage
            for name in files + prepared:
                storage.delete(name)

        transaction.on_commit(delete_files)
    return {"values": values_deleted, "uploads": uploads_purged, "files": len(files)}
