"""Accepting an upload: the one function behind the data endpoint, the web form and the REST API.

All or nothing (seed 000): the file is read (15 MB at most), parsed and checked first; only
a file without any error is stored, with its Upload row, in one transaction, and its
processing is queued once that transaction has committed.
"""

import hashlib

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from .errors import TOO_LARGE, IntakeError, error
from .models import Upload
from .parsing import CANONICAL_CONTENT_TYPE, parse_upload

# Seed 000: "There is a 15MB file size limit": 15 MiB, 15,728,640 bytes, is accepted; one more is not.
MAX_UPLOAD_BYTES = 15 * 1024 * 1024
CHUNK_BYTES = 256 * 1024


def too_large(size=None):
    said = f" ({size:,} bytes)" if size else ""
    return IntakeError([error(TOO_LARGE, f"The file is larger than the 15 MB limit{said}: "
                                         f"{MAX_UPLOAD_BYTES:,} bytes at most.")], status=413)


def read_capped(stream_or_bytes, limit=MAX_UPLOAD_BYTES):
    """The whole body, read in chunks and never more than limit + 1 bytes of it."""
    if isinstance(stream_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(stream_or_bytes)
        if len(data) > limit:
            raise too_large(len(data))
        return data
    chunks, size = [], 0
    while True:
        chunk = stream_or_bytes.read(min(CHUNK_BYTES, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large()


def accept_upload(integration, stream_or_bytes, *, content_type, channel, submitted_by=None, submitted_via="",
                  filename="") -> Upload:
    """Check a file against the integration and store it, queued for processing; or raise IntakeError."""
    data = read_capped(stream_or_bytes)
    parsed = parse_upload(integration, data, content_type)

    from .tasks import process_upload

    upload = Upload(
        tenant_id=integration.tenant_id, integration=integration, channel=channel,
        submitted_by=submitted_by if getattr(submitted_by, "is_authenticated", False) else None,
        submitted_via=str(submitted_via)[:200], sandbox=integration.sandbox,
        filename=filename[:255], content_type=(content_type or "")[:100], size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(), records=parsed.records, status=Upload.Status.QUEUED,
        queued_at=timezone.now(),
    )
    stored_name = _stored_name(integration, filename, parsed.data_format)
    upload.file.save(stored_name, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            upload.save()
            transaction.on_commit(lambda: process_upload.delay(upload.pk))
    except BaseException:
        # Nothing stored on failure: the file goes too.
        upload.file.storage.delete(upload.file.name)
        raise
    return upload


def _stored_name(integration, filename, data_format):
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    base = get_valid_filename(filename.rsplit("/", 1)[-1]) if filename else ""
    return f"{stamp}-{base or integration.data_type + '.' + data_format}"


def content_type_for_file(integration, filename, sent_content_type=""):
    """A browser's guess at a file's type is unreliable; the file's extension decides, else the Data Format."""
    name = (filename or "").lower()
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".csv") or name.endswith(".txt"):
        return "text/csv"
    return CANONICAL_CONTENT_TYPE[integration.data_format]
