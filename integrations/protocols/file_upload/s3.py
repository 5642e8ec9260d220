"""With PORTAL_S3_BUCKET: step 1 hands out an S3 presigned PUT (SigV4, boto3 through the
client django-storages already holds), and a periodic check (check_arrivals, every minute from
Celery beat) notices the files that arrived and records them as the portal's own arrivals.

S3 refuses a PUT whose URL is expired or whose signature does not match, and a single PUT
over 5 GB (EntityTooLarge); the portal never sees those. What it does itself: it records the
first file it finds at a slot's key (size, SHA-256 read back from S3), copies it to the
upload's own key and deletes the incoming one, so that the file in the history stays the one
recorded; a second PUT to the same URL before it expires lands at the incoming key again and
is deleted by the next check (refused after the fact, logged). Files over 5 GB and files whose
token was revoked before they arrived are deleted, not recorded.
"""

import hashlib
import logging
import posixpath
import weakref
from datetime import timedelta

from botocore.config import Config
from django.conf import settings
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from . import arrivals
from .limits import MAX_FILE_BYTES, url_seconds
from .models import FileSlot

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024


def enabled():
    return bool(getattr(settings, "S3_BUCKET", ""))


def _storage():
    return storages["default"]  # the uploads' storage (Upload.file), django-storages' S3Storage here


def _client():
    return _storage().connection.meta.client


_presigners = weakref.WeakKeyDictionary()


def _presigner():
    """django-storages' own client (its session, endpoint, region, addressing style), signing
    SigV4 whatever AWS_S3_SIGNATURE_VERSION says: botocore would presign SigV2 for some endpoints,
    and reference 003's URLs are SigV4 (X-Amz-Algorithm=AWS4-HMAC-SHA256). Made as django-storages
    makes its unsigned client, once per storage."""
    storage = _storage()
    if storage not in _presigners:
        config = storage.client_config.merge(Config(signature_version="s3v4"))
        _presigners[storage] = storage._create_session().client(
            "s3", region_name=storage.region_name, use_ssl=storage.use_ssl, endpoint_url=storage.endpoint_url,
            config=config, verify=storage.verify)
    return _presigners[storage]


def _bucket():
    return _storage().bucket_name


def key_of(name):
    """The S3 key of a storage name (under the storage's location, if it has one)."""
    location = getattr(_storage(), "location", "") or ""
    return posixpath.join(location, name) if location else name


def incoming_key(slot):
    return key_of(f"file-upload-incoming/{slot.tenant_id}/{slot.pk}/{arrivals.safe_name(slot.filename)}")


def presigned_put(key, seconds):
    return _presigner().generate_presigned_url("put_object", Params={"Bucket": _bucket(), "Key": key},
                                            ExpiresIn=seconds, HttpMethod="PUT")


def _head(key):
    client = _client()
    try:
        return client.head_object(Bucket=_bucket(), Key=key)
    except client.exceptions.ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _delete(key):
    _client().delete_object(Bucket=_bucket(), Key=key)


def _sha256(key):
    """Read the object back in chunks: constant memory, whatever its size."""
    body = _client().get_object(Bucket=_bucket(), Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in body.iter_chunks(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    finally:
        body.close()
    return digest.hexdigest(), size


def check_arrivals(now=None):
    """Record the files that arrived at waiting slots' keys, and mark expired the slots whose
    time is over; returns (the new uploads' ids, how many expired). Safe to run twice at once:
    a slot is claimed before its file is taken."""
    if not enabled():
        return [], 0
    now = now or timezone.now()
    # A PUT that began before its URL expired may end after: look for as long again.
    since = now - timedelta(seconds=url_seconds())
    found = []
    waiting = (FileSlot.objects.filter(status=FileSlot.Status.WAITING, expires_at__gt=since)
               .exclude(storage_key="").select_related("token", "integration", "process_into", "tenant"))
    for slot in waiting:
        try:
            head = _head(slot.storage_key)
            upload = _take(slot, head, now) if head else None
        except Exception:  # noqa: BLE001 - one slot's trouble must not stop the others
            log.exception("Checking file #%s in S3 failed", slot.pk)
            continue
        if upload is not None:
            found.append(upload.pk)
    _refuse_second_puts(since)
    expired = (FileSlot.objects.filter(status=FileSlot.Status.WAITING, expires_at__lte=since)
               .exclude(storage_key="").update(status=FileSlot.Status.EXPIRED))
    return found, expired


def _take(slot, head, now):
    if not FileSlot.objects.filter(pk=slot.pk, status=FileSlot.Status.WAITING).update(
            status=FileSlot.Status.RECEIVING, claimed_at=now):
        return None  # another check took it
    key, size = slot.storage_key, int(head["ContentLength"])
    refusal = ("The API token that requested the URL was revoked before the file arrived."
               if not slot.token.is_active else
               f"The file is larger than 5 GB ({size:,} bytes)." if size > MAX_FILE_BYTES else "")
    if refusal:
        _delete(key)
        FileSlot.objects.filter(pk=slot.pk).update(status=FileSlot.Status.REFUSED, message=refusal[:500])
        log.warning("File #%s refused and deleted from S3: %s", slot.pk, refusal)
        return None
    try:
        sha256, read = _sha256(key)
        name = arrivals.stored_name(slot)
        _client().copy({"Bucket": _bucket(), "Key": key}, _bucket(), key_of(name))
    except Exception:
        arrivals.release(slot)
        raise
    try:
        with transaction.atomic():
            upload = arrivals.record_arrival(slot, name, read, sha256)
    except Exception:
        _delete(key_of(name))
        arrivals.release(slot)
        raise
    _delete(key)
    return upload


def _refuse_second_puts(since):
    """A file PUT again to a URL whose file was recorded already: deleted (the URL was for one file)."""
    for slot in (FileSlot.objects.filter(status=FileSlot.Status.RECEIVED, expires_at__gt=since)
                 .exclude(storage_key="")):
        try:
            if _head(slot.storage_key):
                _delete(slot.storage_key)
                log.warning("File #%s was sent again to the same URL; the second copy was deleted.", slot.pk)
        except Exception:  # noqa: BLE001
            log.exception("Checking file #%s in S3 for a second PUT failed", slot.pk)


def open_stream(name):
    """A stored file as a stream read from S3 in chunks (read(n), close())."""
    return _client().get_object(Bucket=_bucket(), Key=key_of(name))["Body"]
