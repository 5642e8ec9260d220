"""Step 1: permission to send one file, as a time-limited URL that only works for that file.

Embedded (no S3): the URL is the portal's own,
`PUT /api/v1/file-upload/<id>/<file name>?expires=…&signature=…`, signed with Django's signing
(HMAC-SHA256 of the id, the name and the expiry under SECRET_KEY). With PORTAL_S3_BUCKET it is
an S3 presigned PUT (SigV4) for a key of its own (s3.py).
"""

import mimetypes
from datetime import timedelta

from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.http import urlencode

from integrations import registry, services
from integrations.models import ApiToken, Integration
from uploads.errors import IntakeError, error
from uploads.intake import content_type_for_file, printable

from . import arrivals, s3
from .limits import url_seconds
from .models import FileSlot, TokenLink

SLUG = "file_upload"
INTEGRATION_NAME = "File Upload API"
SIGNING_SALT = "integrations.protocols.file_upload.put"


def base_name(filename):
    """Only the base name of what the client called its file; IntakeError when nothing is left."""
    if not isinstance(filename, str) or not filename.strip():
        raise IntakeError([error("filename_required", 'Send {"filename": "<FILE_NAME>"}: the name of the file '
                                                      "you are about to send.")])
    name = printable(filename).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", ".."):
        raise IntakeError([error("filename_invalid", f"“{filename[:100]}” names no file; send its base name, "
                                                     "e.g. customers.csv.")])
    return name[-255:]  # the end keeps the extension


def receiving_integration(tenant, actor=None):
    """The tenant's File Upload API integration (inbound): every file received is one of its
    uploads. Made on first use, in Sandbox Mode as every new integration."""
    integration = (Integration.objects.filter(tenant=tenant, protocol=SLUG, direction=registry.INBOUND)
                   .order_by("id").first())
    if integration is None:
        integration = services.create_integration(tenant, actor, name=INTEGRATION_NAME, protocol=SLUG,
                                                  direction=registry.INBOUND)
    return integration


def _content_type(filename, linked):
    """What the file will be read as: for a data integration, as its web form would read it (the
    extension, else the Data Format); otherwise the extension's usual type."""
    if linked is not None:
        return content_type_for_file(linked, filename)
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def open_slot(token, integration, filename, base_url):
    """Step 1 for a File Upload API token, whose files go to `integration` (the tenant's File
    Upload API integration): (slot, url). Raises IntakeError (nothing stored)."""
    name = base_name(filename)
    with transaction.atomic():
        if not integration.enabled:
            raise IntakeError([error("integration_disabled", f"The “{integration.name}” integration is disabled; "
                                                             "an admin can enable it on its Settings tab.")], 403)
        link = TokenLink.objects.filter(token=token).select_related("integration").first()
        linked = link.integration if link else None
        if linked is not None and not linked.enabled:
            raise IntakeError([error("integration_disabled", f"This token's files go to “{linked.name}”, which is "
                                                             "disabled; an admin can enable it.")], 403)
        slot = FileSlot.objects.create(
            tenant_id=token.tenant_id, token=token, sent_by=sent_by(token)[:200], integration=integration,
            process_into=linked, linked=linked is not None, filename=name,
            content_type=_content_type(name, linked)[:100],
            expires_at=timezone.now() + timedelta(seconds=url_seconds()),
        )
        if s3.enabled():
            slot.storage_key = s3.incoming_key(slot)
            slot.save(update_fields=["storage_key"])
            url = s3.presigned_put(slot.storage_key, url_seconds())
        else:
            url = base_url.rstrip("/") + signed_path(slot)
    token.touch()
    return slot, url


def sent_by(token):
    return f"File Upload API token “{token.name}” ({token.masked})"


# --- The portal's own signed URL (embedded) ---------------------------------------------------


def _signature(slot_id, name, expires):
    return signing.Signer(salt=SIGNING_SALT).signature(f"{slot_id}:{name}:{expires}")


def signed_path(slot):
    """/api/v1/file-upload/<id>/<file name>?expires=…&signature=…: it ends with the file's name, as
    an S3 key does; a URL whose path ends with "/" would have curl --upload-file add the local
    file's name to it (and so change the URL)."""
    expires, name = int(slot.expires_at.timestamp()), arrivals.safe_name(slot.filename)
    query = urlencode({"expires": expires, "signature": _signature(slot.pk, name, expires)})
    return f"{reverse('file_upload_put', args=[slot.pk, name])}?{query}"


class Refused(Exception):
    """A PUT refused before any of its body is read: (status, error id, description)."""

    def __init__(self, status, error_id, description):
        super().__init__(description)
        self.status, self.error_id, self.description = status, error_id, description


def verified_slot(slot_id, name, query, now=None):
    """The slot a signed URL is for, if the URL is intact, unexpired and its token still active.
    Raises Refused(403) otherwise: the same answer whether or not such a slot exists."""
    expires, signature = query.get("expires", ""), query.get("signature", "")
    if not (expires.isdigit() and signature
            and constant_time_compare(signature, _signature(slot_id, name, expires))):
        raise Refused(403, "signature_mismatch", "This URL is not one the portal issued (it was changed or cut "
                                                 "short). Copy it whole, or request a new one (step 1).")
    if int(expires) <= (now or timezone.now()).timestamp():
        raise Refused(403, "url_expired", "This URL has expired. Request a new one (step 1) and send the file "
                                          f"within {url_seconds() // 60} minutes of asking.")
    slot = FileSlot.objects.select_related("token", "integration", "tenant").filter(pk=slot_id).first()
    if slot is None or slot.storage_key:
        raise Refused(403, "signature_mismatch", "This URL is not one the portal issued.")
    if not slot.token.is_active:
        raise Refused(403, "token_revoked", "The API token that requested this URL has been revoked.")
    return slot


def file_upload_tokens(tenant):
    return ApiToken.objects.filter(tenant=tenant, kind=ApiToken.Kind.FILE_UPLOAD)
