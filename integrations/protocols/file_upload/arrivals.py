"""A file that arrived, whichever way (the portal's own PUT, or found in S3), recorded once:
an upload in the history, an audit event, and a notification to the tenant's admins (on their
page, and by email from a Celery task, once the arrival is committed).

A slot (a URL of step 1) takes one PUT at a time: claim() is a conditional UPDATE, so that of
two PUTs at once one gets it; the loser, and any PUT after the file arrived, is refused.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousFileOperation
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import get_valid_filename

from portal.audit import record
from portal.celery import app
from portal.models import Membership
from uploads import queue
from uploads.models import Upload

from .limits import STALE_CLAIM_SECONDS
from .models import FileSlot, Notification

FILE_RECEIVED = "file.received"  # the audit trail's action
EMAIL_TASK = "integrations.protocols.file_upload.tasks.email_admins"


def safe_name(filename):
    """A file name as storage can hold it: its last 100 bytes, whole characters, no path."""
    try:
        name = get_valid_filename(filename)
    except SuspiciousFileOperation:
        name = ""
    name = name.encode()[-100:].decode(errors="ignore").lstrip(".-_ ")
    return name or "file"


def stored_name(slot):
    """Where the file is kept: the uploads' own folder, a name no other file has (the slot's id)."""
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    field = Upload._meta.get_field("file")
    owner = Upload(tenant_id=slot.tenant_id, integration_id=slot.integration_id)
    return field.generate_filename(owner, f"{stamp}-{slot.pk}-{safe_name(slot.filename)}")


# --- One PUT at a time ------------------------------------------------------------------------


def claim(slot, now=None):
    """Take the slot for one PUT. False when its file was received already, or another PUT is
    being received right now; a claim left by a receiver that died (its process killed mid-PUT,
    silent for STALE_CLAIM_SECONDS) is taken over."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=STALE_CLAIM_SECONDS)
    free = Q(status=FileSlot.Status.WAITING) | Q(status=FileSlot.Status.RECEIVING, claimed_at__lt=stale)
    return bool(FileSlot.objects.filter(free, pk=slot.pk).update(status=FileSlot.Status.RECEIVING, claimed_at=now))


def release(slot):
    """A PUT that failed: the URL may be used again until it expires."""
    FileSlot.objects.filter(pk=slot.pk, status=FileSlot.Status.RECEIVING).update(
        status=FileSlot.Status.WAITING, claimed_at=None)


def heartbeat(slot):
    FileSlot.objects.filter(pk=slot.pk, status=FileSlot.Status.RECEIVING).update(claimed_at=timezone.now())


# --- Recording an arrival ---------------------------------------------------------------------


def record_arrival(slot, name, size, sha256):
    """The upload of a file stored under `name`, inside the caller's transaction.

    A file for a data integration is queued for processing (the File Upload API integration's
    processing, in arrival order, seed 000's Sandbox rules); any other file is kept for the
    team as it is, and its upload says so.
    """
    now = timezone.now()
    integration = slot.integration
    upload = Upload(
        tenant_id=slot.tenant_id, integration=integration, channel=Upload.Channel.PRESIGNED,
        submitted_via=slot.sent_by, sandbox=integration.sandbox, filename=slot.filename,
        content_type=slot.content_type, size_bytes=size, sha256=sha256,
    )
    upload.file.name = name
    if slot.linked:
        target = slot.process_into.name if slot.process_into else "a data integration deleted since"
        upload.status, upload.queued_at = Upload.Status.QUEUED, now
        upload.message = f"To be processed into {target}."
    else:
        upload.status, upload.started_at, upload.finished_at = Upload.Status.PROCESSED, now, now
        upload.message = "Received and kept for your team; its token is linked to no data integration."
    upload.save()
    FileSlot.objects.filter(pk=slot.pk).update(status=FileSlot.Status.RECEIVED, upload=upload, received_at=now,
                                               claimed_at=None)
    record(integration.tenant, slot.token, FILE_RECEIVED, slot.filename, integration, upload=upload.pk, file=slot.pk,
           size=size, sha256=sha256, token=slot.token.prefix)
    notification = Notification.objects.create(
        tenant_id=slot.tenant_id, upload=upload,
        message=f"{slot.filename} ({filesizeformat(size)}) received from {slot.sent_by}"[:500])
    if slot.linked:
        transaction.on_commit(lambda: queue.process_upload(upload.pk))
    transaction.on_commit(lambda: app.signature(EMAIL_TASK, args=(notification.pk,)).delay())
    return upload


# --- Email ----------------------------------------------------------------------------------


def admins(tenant_id):
    """The tenant's admins: its owners and the members who may edit integrations."""
    return get_user_model().objects.filter(
        memberships__tenant_id=tenant_id, is_active=True,
        memberships__role__in=[Membership.Role.OWNER, Membership.Role.EDITOR]).exclude(email="").distinct()


def email_admins(notification_id):
    """Email a notification to the tenant's admins, once (a second run finds it sent)."""
    if not Notification.objects.filter(pk=notification_id, emailed_at=None).update(emailed_at=timezone.now()):
        return 0
    notification = Notification.objects.select_related("upload", "tenant").get(pk=notification_id)
    upload = notification.upload
    recipients = sorted(admins(notification.tenant_id).values_list("email", flat=True))
    if recipients:
        link = settings.PORTAL_BASE_URL.rstrip("/") + upload.get_absolute_url()
        try:
            send_mail(
                f"File received: {upload.filename}",
                f"{notification.message}.\n\nSize: {upload.size_bytes:,} bytes\nSHA-256: {upload.sha256}\n"
                f"{upload.message}\n\nUpload #{upload.pk}: {link}\n",
                None, recipients,
            )
        except Exception:
            Notification.objects.filter(pk=notification_id).update(emailed_at=None)  # to be tried again
            raise
    Notification.objects.filter(pk=notification_id).update(emailed_to=len(recipients))
    return len(recipients)
