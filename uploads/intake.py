"""The one intake: every submission, from every channel, in both directions.

A body (bytes or a stream) is spooled to a temporary file while it is counted and hashed,
never more than the protocol's size limit of it; the integration's protocol checks it; only
a submission without any error is stored (the file, then its Upload row, in one
transaction), and then processed (inbound) or dispatched (outbound) once that transaction
has committed. All or nothing: a refused submission leaves no row and no file.
"""

import hashlib
import tempfile

from django.core.files import File
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from . import queue
from .delivery import dispatch
from .errors import TOO_LARGE, IntakeError, error
from .models import Upload

# Seed 000: "There is a 15MB file size limit": 15 MiB, 15,728,640 bytes, is accepted; one more is not.
MAX_UPLOAD_BYTES = 15 * 1024 * 1024
CHUNK_BYTES = 256 * 1024
SPOOL_IN_MEMORY_BYTES = 1024 * 1024  # smaller bodies never touch the disk before they are stored


def too_large(size=None, limit=MAX_UPLOAD_BYTES):
    said = f" ({size:,} bytes)" if size else ""
    return IntakeError([error(TOO_LARGE, f"The file is larger than the {_size_words(limit)} limit{said}: "
                                         f"{limit:,} bytes at most.")], status=413)


def _size_words(limit):
    return f"{limit // (1024 * 1024)} MB" if limit % (1024 * 1024) == 0 else f"{limit:,}-byte"


class Spooled:
    """A body copied into a temporary file, with its size and SHA-256."""

    def __init__(self, body, limit, expected_size=None):
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)
        digest, size = hashlib.sha256(), 0
        for chunk in _chunks(body, limit):
            size += len(chunk)
            if size > limit:
                self.file.close()
                raise too_large(limit=limit)
            digest.update(chunk)
            self.file.write(chunk)
        if expected_size is not None and size != expected_size:
            self.file.close()
            # The client stopped before sending what its Content-Length promised: a failed request.
            raise IntakeError([error("request_incomplete", f"The request body ended after {size:,} of the "
                                                           f"{expected_size:,} bytes its Content-Length announced.")])
        self.size, self.sha256 = size, digest.hexdigest()
        self.file.seek(0)

    def rewind(self):
        self.file.seek(0)
        return self.file

    def close(self):
        self.file.close()


def _chunks(body, limit):
    if isinstance(body, (bytes, bytearray, memoryview)):
        yield bytes(body)
        return
    read = 0
    while True:
        chunk = body.read(min(CHUNK_BYTES, limit + 1 - read))
        if not chunk:
            return
        read += len(chunk)
        yield chunk
        if read > limit:
            return


def receive(integration, body, *, channel, content_type="", filename="", submitted_by=None, submitted_via="",
            expected_size=None) -> Upload:
    """Check a submission against its integration and store it; or raise IntakeError (nothing stored).

    Inbound, the upload is queued for processing; outbound, it is dispatched to the vendor
    (a dry run in Sandbox Mode). Raises django's ValidationError when an outbound integration
    cannot send.
    """
    if not integration.enabled:
        raise IntakeError([error("integration_disabled", "This integration is disabled; enable it on its "
                                                         "Settings tab to use it.")], status=403)
    if not integration.is_inbound:
        dispatch.can_send(integration)
    protocol = integration.protocol_spec
    spooled = Spooled(body, protocol.max_upload_bytes, expected_size)
    try:
        checked = protocol.check(integration, spooled.rewind(), content_type)
        upload = Upload(
            tenant_id=integration.tenant_id, integration=integration, channel=channel,
            submitted_by=submitted_by if getattr(submitted_by, "is_authenticated", False) else None,
            submitted_via=str(submitted_via)[:200], sandbox=integration.sandbox, filename=(filename or "")[:255],
            content_type=(content_type or "")[:100], size_bytes=spooled.size, sha256=spooled.sha256,
            records=checked.records, message=checked.message[:500],
        )
        if integration.is_inbound:
            upload.status, upload.queued_at = Upload.Status.QUEUED, timezone.now()
        else:
            upload.status = Upload.Status.DRY_RUN if integration.sandbox else Upload.Status.SENDING
        upload.file.save(_stored_name(integration, filename, checked.extension), File(spooled.rewind()), save=False)
    finally:
        spooled.close()
    try:
        with transaction.atomic():
            upload.save()
            if integration.is_inbound:
                transaction.on_commit(lambda: queue.process_upload(upload.pk))
            else:
                dispatch.start(upload, submitted_via or str(submitted_by or "system"))
    except BaseException:
        upload.file.storage.delete(upload.file.name)  # nothing stored on failure: the file goes too
        raise
    if not integration.is_inbound:
        upload.refresh_from_db()  # a dry run has finished already, in the database
    return upload


def _stored_name(integration, filename, extension):
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    base = get_valid_filename(filename.replace("\\", "/").rsplit("/", 1)[-1])[-100:] if filename else ""
    return f"{stamp}-{base or (integration.key or integration.protocol) + '.' + (extension or 'dat')}"


def content_type_for_file(integration, filename, sent_content_type=""):
    """A browser's guess at a file's type is unreliable; the file's extension decides, else the Data Format."""
    name = (filename or "").lower()
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".csv") or name.endswith(".txt"):
        return "text/csv"
    return "application/json" if integration.settings.get("data_format") == "json" else "text/csv"
