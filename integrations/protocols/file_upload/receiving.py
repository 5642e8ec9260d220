"""Step 2 on the embedded default: the portal receives the PUT itself and streams its body to
storage (the local file storage under MEDIA_ROOT).

The body is read in 1 MB chunks, hashed and written as it comes (constant memory, whatever
the size) to a temporary file in MEDIA_ROOT/file-upload-incoming/, flushed to the disk every
64 MB (so that the last flush is short and the client's answer is not held up by gigabytes of
cached writes), and moved into place with one rename only when every byte is in and on disk:
a PUT that breaks off leaves no half file under any upload's name, and its temporary file is
deleted at once (or, if its process was killed, by the periodic sweep).
"""

import contextlib
import hashlib
import logging
import os
import secrets
import time

from django.utils import timezone

from uploads.errors import IntakeError, error
from uploads.intake import unreadable
from uploads.models import Upload

from . import arrivals
from .limits import STALE_CLAIM_SECONDS
from .models import FileSlot

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
SYNC_BYTES = 64 * 1024 * 1024
HEARTBEAT_SECONDS = 60
INCOMING = "file-upload-incoming"


def _storage():
    return Upload._meta.get_field("file").storage


def receive_put(slot, body, length):
    """Store `length` bytes read from `body` for the slot: (storage name, size, SHA-256).
    Raises IntakeError when the body breaks off or stalls; nothing is left behind then."""
    storage = _storage()
    name = arrivals.stored_name(slot)
    final = storage.path(name)
    incoming = storage.path(INCOMING)
    os.makedirs(incoming, exist_ok=True)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    part = os.path.join(incoming, f"{slot.pk}-{secrets.token_hex(8)}.part")
    digest, size = hashlib.sha256(), 0
    try:
        with open(part, "xb") as out:
            fd, synced, beat = out.fileno(), 0, time.monotonic()
            while size < length:
                try:
                    chunk = body.read(min(CHUNK_BYTES, length - size))
                except Exception as exc:  # noqa: BLE001 - however the body broke, it is the request's fault
                    raise unreadable(exc) from exc
                if not chunk:
                    raise IntakeError([error("request_incomplete", f"The file ended after {size:,} of the {length:,} "
                                                                   "bytes its Content-Length announced; nothing was "
                                                                   "stored. Send it again to the same URL.")])
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if size - synced >= SYNC_BYTES:
                    out.flush()
                    os.fdatasync(fd)
                    # What is on disk need not stay in the page cache: a 5 GB file would push out
                    # everything else the machine caches.
                    os.posix_fadvise(fd, synced, size - synced, os.POSIX_FADV_DONTNEED)
                    synced = size
                if time.monotonic() - beat > HEARTBEAT_SECONDS:
                    arrivals.heartbeat(slot)
                    beat = time.monotonic()
            out.flush()
            os.fsync(fd)
        os.replace(part, final)
        _sync_folder(os.path.dirname(final))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(part)
        raise
    return name, size, digest.hexdigest()


def _sync_folder(path):
    """The rename itself on disk, too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def delete_stored(name):
    with contextlib.suppress(FileNotFoundError):
        _storage().delete(name)


def sweep(now=None):
    """Periodic: URLs past their time that were never used are marked expired; temporary files
    of PUTs whose process was killed (not written to for STALE_CLAIM_SECONDS) are deleted.
    Returns (slots expired, files deleted)."""
    now = now or timezone.now()
    expired = FileSlot.objects.filter(status=FileSlot.Status.WAITING, storage_key="", expires_at__lte=now).update(
        status=FileSlot.Status.EXPIRED)
    deleted = 0
    try:
        folder = _storage().path(INCOMING)
        names = os.listdir(folder)
    except (FileNotFoundError, NotImplementedError):  # nothing received yet, or files kept in S3
        return expired, deleted
    cutoff = time.time() - STALE_CLAIM_SECONDS
    for name in names:
        path = os.path.join(folder, name)
        with contextlib.suppress(FileNotFoundError):
            if name.endswith(".part") and os.stat(path).st_mtime < cutoff:
                os.remove(path)
                deleted += 1
                log.warning("Deleted %s, left by a PUT whose process stopped mid-way.", name)
    return expired, deleted
