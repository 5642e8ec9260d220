"""The one intake: every submission, from every channel, in both directions.

A body (bytes, a stream, or a form's temporary file) is counted and hashed as it is read, never
more than the protocol's size limit of it, and kept for the check (Spooled); the integration's
protocol checks it; only a submission without any error is stored (the file, then its Upload
row, in one transaction), and then processed (inbound) or dispatched (outbound) once that transaction
has committed. All or nothing: a refused submission leaves no row and no file.
"""

import hashlib
import io
import logging
import os
import re

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File, uploadhandler
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from . import processing
from .delivery import dispatch
from .errors import TOO_LARGE, IntakeError, error
from .models import Upload

log = logging.getLogger(__name__)

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


def unreadable(exc):
    """The request body could not be read to its end: the client stopped sending (a timeout), or
    sent something the server cannot de-chunk. A failed request: nothing is stored."""
    if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():  # the server's body deadline
        return IntakeError([error("request_timeout", "The request body did not arrive in time; "
                                                     "nothing was stored. Send it again.")], status=408)
    log.info("Unreadable request body: %s: %s", type(exc).__name__, exc)
    return IntakeError([error("request_incomplete", "The request body could not be read to its end "
                                                    f"({type(exc).__name__}); nothing was stored.")])


class Spooled:
    """A body with its size and SHA-256, at hand for the check and then for storage.

    A body that is a temporary file already (a form's large file, which Django's upload handler
    wrote to FILE_UPLOAD_TEMP_DIR) is only read, not copied. Any other body is copied as it is
    read: in memory up to SPOOL_IN_MEMORY_BYTES, beyond that into a temporary file of the same
    kind. The local storage takes a temporary file by renaming it (when FILE_UPLOAD_TEMP_DIR is on
    MEDIA_ROOT's file system, as it is by default), so a large file is written to the disk once
    instead of two or three times (a 5 GiB outbound file took 2.7 times as long as the File Upload
    API's own PUT, which writes it once).
    """

    def __init__(self, body, limit, expected_size=None):
        self.owned = not hasattr(body, "temporary_file_path")
        self.file = io.BytesIO() if self.owned else body
        try:
            if not self.owned:
                body.seek(0)
            self.size, self.sha256 = self._read(body, limit, expected_size)
        except BaseException:
            self.close()
            raise
        self.file.seek(0)

    def _read(self, body, limit, expected_size):
        digest, size = hashlib.sha256(), 0
        for chunk in _chunks(body, limit):
            size += len(chunk)
            if size > limit:
                raise too_large(limit=limit)
            digest.update(chunk)
            if self.owned:
                self._keep(chunk, size)
        if expected_size is not None and size != expected_size:
            # The client stopped before sending what its Content-Length promised: a failed request.
            raise IntakeError([error("request_incomplete", f"The request body ended after {size:,} of the "
                                                           f"{expected_size:,} bytes its Content-Length announced.")])
        return size, digest.hexdigest()

    def _keep(self, chunk, size):
        if size > SPOOL_IN_MEMORY_BYTES and isinstance(self.file, io.BytesIO):
            spilled = TemporaryUploadedFile("spooled", "application/octet-stream", 0, None)
            spilled.write(self.file.getvalue())
            self.file.close()
            self.file = spilled
        self.file.write(chunk)

    def rewind(self):
        self.file.seek(0)
        return self.file

    def for_storage(self):
        """The body as storage takes it: a temporary file (which the local storage moves into
        place) or the bytes in memory."""
        self.file.seek(0)
        return self.file if hasattr(self.file, "temporary_file_path") else File(self.file)

    def close(self):
        if self.owned:
            self.file.close()  # a temporary file moved into storage is gone already: nothing to delete


def _chunks(body, limit):
    if isinstance(body, (bytes, bytearray, memoryview)):
        yield bytes(body)
        return
    read = 0
    while True:
        try:
            chunk = body.read(min(CHUNK_BYTES, limit + 1 - read))
        except Exception as exc:  # noqa: BLE001 — whatever the server says of a broken body, it is the request's fault
            raise unreadable(exc) from exc
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
    filename, content_type = printable(filename), printable(content_type)
    spooled = Spooled(body, protocol.max_upload_bytes, expected_size)
    try:
        try:
            checked = protocol.check(integration, spooled.rewind(), content_type)
        except RecursionError:  # json.loads of [[[[…: a refusal whichever protocol reads it
            raise IntakeError([error("request_malformed", "The request body is nested too deeply to be read.")]) \
                from None
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
        name = _stored_name(integration, filename, checked.extension)
        upload.file.save(name, spooled.for_storage(), save=False)
    finally:
        spooled.close()
    try:
        if checked.prepared is not None and integration.is_inbound:
            upload.prepared.save(f"{name}.prepared", ContentFile(checked.prepared), save=False)
        with transaction.atomic():
            upload.save()
            if integration.is_inbound:
                transaction.on_commit(lambda: processing.queue_processing(upload))
            else:
                dispatch.start(upload, submitted_via or str(submitted_by or "system"))
    except BaseException:
        delete_stored_files(upload)  # nothing stored on failure: the file goes too
        raise
    if not integration.is_inbound:
        upload.refresh_from_db()  # a dry run has finished already, in the database
    return upload


def delete_stored_files(upload):
    for stored in upload.stored_files:
        stored.storage.delete(stored.name)


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def printable(text):
    """A name the client gave (file name, content type) as the database can store it: without
    control characters (PostgreSQL refuses NUL) or lone surrogates (not encodable)."""
    return _UNPRINTABLE.sub("", str(text or ""))


def _stored_name(integration, filename, extension):
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    try:
        base = get_valid_filename(filename.replace("\\", "/").rsplit("/", 1)[-1]) if filename else ""
    except SuspiciousFileOperation:  # "..", or nothing left of the name
        base = ""
    # File systems cap a name at 255 bytes, not characters: the last 100 bytes of it, whole characters.
    base = base.encode()[-100:].decode(errors="ignore").lstrip(".-_ ")
    return f"{stamp}-{base or (integration.key or integration.protocol) + '.' + (extension or 'dat')}"


class TemporaryFileUploadHandler(uploadhandler.TemporaryFileUploadHandler):
    """Django's handler for large files of a form (settings.FILE_UPLOAD_HANDLERS), except that its
    temporary file is not named after the file's extension: a 250-character extension made the
    temporary file's name too long for the file system (a 500). The file keeps its real name."""

    def new_file(self, *args, **kwargs):
        uploadhandler.FileUploadHandler.new_file(self, *args, **kwargs)
        extension = get_valid_filename(f"x{os.path.splitext(self.file_name or '')[1][:16]}")[1:]
        self.file = TemporaryUploadedFile(f"upload{extension}", self.content_type, 0, self.charset,
                                          self.content_type_extra)
        self.file.name = self.file_name


def content_type_for_file(integration, filename, sent_content_type=""):
    """A browser's guess at a file's type is unreliable; the file's extension decides, else the Data Format."""
    name = (filename or "").lower()
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".csv") or name.endswith(".txt"):
        return "text/csv"
    return "application/json" if integration.settings.get("data_format") == "json" else "text/csv"
