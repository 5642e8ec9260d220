"""Processing inbound uploads: the part every protocol shares.

One upload is processed in one transaction, holding its integration's row lock (purge takes
the same lock, so the two never interleave); what processing makes of the stored file is the
protocol's (integrations.registry.Protocol.process). Safe to run twice: only a queued upload
(or one whose worker died mid-way) is taken, and protocols write idempotently.

Sandbox Mode (seed 000): in Sandbox Mode a failing file just fails. Out of it, an
integration's uploads are processed in arrival order, and one that fails halts the later
ones (status "waiting") until an editor retries or skips it. Each processed upload releases
only the next waiting one, so a backlog of n uploads costs n tasks, not n².

The worker that processed an upload goes on with the integration's next ones in arrival
order, in the same transaction and under the same lock, each in a savepoint of its own (all or
nothing per upload), for at most BATCH_UPLOADS uploads or BATCH_SECONDS: a burst of small
uploads then costs one lock and one commit per batch instead of a task, a broker round trip, a
lock and a commit each. The bound keeps the lock short: a purge waits for it, and on SQLite so
does every other write. In Sandbox Mode too: there the order does not matter, but the saving
does. An upload that arrives while an earlier one of its integration is still queued sends no
task of its own (queue_processing): a batch will reach it, and each batch, once committed, sends
the task of the oldest upload it left queued.
"""

import datetime
import logging
import time
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, prefetch_related_objects
from django.utils import timezone

from integrations.models import Integration
from portal.audit import Action, record
from portal.db import DATABASE_BUSY

from . import queue
from .errors import TRANSFORM_DATA, IntakeError, error
from .models import Upload

log = logging.getLogger(__name__)

Status = Upload.Status
BATCH_UPLOADS = 200
BATCH_SECONDS = 0.5
# A batch's next uploads: queued, waiting behind the one before, or claimed by a worker that waits
# for the lock; read this many at a time.
FOLLOWING = [Status.WAITING, Status.QUEUED, Status.PROCESSING]
FOLLOWING_READ_AT_ONCE = 20
# When the database is busy or unreachable (portal.db.DATABASE_BUSY), the batch's transaction
# rolls back whole, so nothing of it is kept, and the upload's task runs again later
# (uploads/tasks.py) rather than the upload failing: out of Sandbox Mode a failure halts the
# integration until an editor acts. After BUSY_TRIES tries it fails all the same, saying why.
BUSY_TRIES = 6


def process_upload(upload_id):
    """Process one upload, once (and, out of Sandbox Mode, the ones that follow it). Safe to call
    again, from any worker, at any time. Returns the upload, or None when it was not ours to do.
    Raises one of DATABASE_BUSY, with nothing written, when the database could not do it now."""
    # Claim: only a queued upload (or one whose worker died mid-way) is taken. A task may find its
    # upload processed already in another's batch (the sweep sends tasks again): a read tells it so
    # without the write (on SQLite, every write waits for the one write lock that batches and
    # intakes hold).
    takeable = Upload.objects.filter(pk=upload_id, status__in=[Status.QUEUED, Status.PROCESSING])
    integration_id = takeable.values_list("integration_id", flat=True).first()
    if integration_id is None:
        return None
    claimed = takeable.update(status=Status.PROCESSING, started_at=timezone.now(), finished_at=None)
    if not claimed:
        return None
    upload = _process_batch(upload_id)
    # Uploads that arrived behind this batch without a task of their own (queue_processing),
    # and that the batch did not reach: the oldest one's task takes them on. Asked once the
    # batch is committed, so that an upload that saw this batch's ones still queued is found.
    # (Not after a busy database: the upload's next try asks.)
    transaction.on_commit(partial(_queue_oldest_queued, integration_id))
    return upload


def give_up(upload_id, exc):
    """The database was busy or unreachable at each of BUSY_TRIES tries: the upload fails, saying
    so (an editor can retry it). Raises if the database still cannot be reached; the upload then
    stays queued or processing, and the stalled-upload check sends its task again later."""
    connection.close_if_unusable_or_obsolete()  # a connection the last try broke is not used again
    _fail(upload_id, [error("database_unavailable", (
        f"The database was busy or unreachable at each of {BUSY_TRIES} tries ({type(exc).__name__}); "
        "nothing was written. Retry the upload."))], statuses=(Status.QUEUED, Status.PROCESSING))
    return Upload.objects.get(pk=upload_id)


def queue_processing(upload):
    """Once an inbound upload is committed: send its processing task, unless an earlier upload of
    its integration is still queued. The batch that processes that one goes on with this one
    (_process_next_ones); when a batch ends, committed, it sends the task of the oldest upload
    still queued (process_upload). A burst of small uploads then costs a task per batch instead
    of one per upload, nearly all of which found their upload processed already."""
    ahead = Upload.objects.filter(integration_id=upload.integration_id, id__lt=upload.pk, status=Status.QUEUED)
    if not ahead.exists():
        queue.process_upload(upload.pk)


def _queue_oldest_queued(integration_id):
    oldest = (Upload.objects.filter(integration_id=integration_id, status=Status.QUEUED)
              .order_by("id").values_list("id", flat=True).first())
    if oldest is not None:
        queue.process_upload(oldest)


def _process_batch(upload_id):
    """Process a claimed upload and, in the same transaction, the ones that follow it."""
    deadline = time.monotonic() + BATCH_SECONDS
    try:
        with transaction.atomic():
            upload = _process(upload_id)
            last = _process_next_ones(upload, deadline) if upload.status == Status.PROCESSED else upload
    except IntakeError as exc:
        _fail(upload_id, exc.errors)
    except DATABASE_BUSY:
        raise  # the upload is not at fault: it is tried again (process_upload)
    except Exception as exc:  # noqa: BLE001 — the upload must not stay "processing" forever
        log.exception("Processing upload %s failed", upload_id)
        _fail(upload_id, [error("processing_failed", f"Processing failed: {type(exc).__name__}.")])
    else:
        if last.status == Status.PROCESSED and not last.sandbox:
            transaction.on_commit(lambda: release_next_upload(last.integration_id))
        return upload
    return None


def _fail(upload_id, errors, statuses=(Status.PROCESSING,), **more):
    Upload.objects.filter(pk=upload_id, status__in=statuses).update(
        status=Status.FAILED, errors=errors, values_written=0, finished_at=timezone.now(),
        message=f"{len(errors)} error{'s' if len(errors) != 1 else ''}; nothing was written.", **more)


def _process(upload_id):
    upload = Upload.objects.select_related("integration").get(pk=upload_id)
    # FOR NO KEY UPDATE: purge and other processing wait for it, but a new upload's row (whose foreign
    # key takes FOR KEY SHARE on the integration) is stored meanwhile instead of waiting for the batch.
    integration = Integration.objects.select_for_update(no_key=True).get(pk=upload.integration_id)
    prefetch_related_objects([integration], "metrics")  # once for every upload of a batch
    return _process_locked(upload, integration)


def _process_locked(upload, integration, next_in_batch=False):
    """Process a claimed upload under its integration's lock. The next ones of a batch were just
    read under the lock, and come in arrival order behind one that went through, so neither a
    purge nor an earlier upload can stand in their way."""
    if not next_in_batch:
        upload.refresh_from_db()  # a purge that held the lock may have changed it
        if upload.status != Status.PROCESSING:
            return upload
    upload.integration = integration
    if not next_in_batch and not integration.sandbox and _is_behind_others(upload):
        # Decided under the lock, so that the upload ahead releases this one when it is done.
        upload.status, upload.started_at = Status.WAITING, None
        upload.message = "Waiting for an earlier upload of this integration (retry or skip it if it failed)."
        upload.save(update_fields=["status", "started_at", "message"])
        return upload
    try:
        stored = upload.file.open("rb")
    except (FileNotFoundError, ValueError, OSError):
        raise IntakeError([error(TRANSFORM_DATA, "The stored file is gone (purged or deleted); nothing to process.")])
    with stored:
        result = integration.protocol_spec.process(upload, stored)
    upload.status = Status.PROCESSED
    upload.records = result.records
    upload.values_written = result.values_written
    upload.errors = []
    upload.message = result.message[:500]
    upload.finished_at = timezone.now()
    prepared, upload.prepared = upload.prepared, ""
    upload.save(update_fields=["status", "records", "values_written", "errors", "message", "started_at",
                               "finished_at", "prepared"])
    if prepared:  # read: it served its purpose (in a savepoint rolled back, the hook goes too)
        transaction.on_commit(partial(prepared.storage.delete, prepared.name))
    return upload


def _process_next_ones(upload, deadline):
    """Under the lock `upload` was processed with: its integration's next uploads in arrival order
    (queued, waiting, or claimed by a worker that waits for this lock), each in a savepoint, until
    one does not go through or the batch is full. Returns the last one.

    They are read a few at a time, and each is written once, when it is processed: no other
    transaction sees it between the two (the batch commits them together), so marking it
    "processing" first would be a statement per upload for nobody. Under the lock, no other
    processing and no purge can change them meanwhile.
    """
    integration, last = upload.integration, upload
    left = BATCH_UPLOADS - 1
    while left > 0:
        following = list(Upload.objects.filter(integration=integration, id__gt=last.id, status__in=FOLLOWING)
                         .order_by("id")[:min(left, FOLLOWING_READ_AT_ONCE)])
        if not following:
            break
        for upload in following:
            if time.monotonic() >= deadline:
                return last
            left -= 1
            last = _process_following(upload, integration)
            if last.status != Status.PROCESSED:
                return last
    return last


def _process_following(following, integration):
    """One upload of a batch after the first, in a savepoint: processed, or failed and returned as it
    now stands."""
    following.started_at, following.finished_at = timezone.now(), None
    try:
        with transaction.atomic():  # a savepoint: this upload's writes go whole or not at all
            return _process_locked(following, integration, next_in_batch=True)
    except IntakeError as exc:
        errors = exc.errors
    except DATABASE_BUSY:
        raise  # the whole batch is tried again, this upload with it (process_upload)
    except Exception as exc:  # noqa: BLE001 — as in _process_batch
        log.exception("Processing upload %s failed", following.pk)
        errors = [error("processing_failed", f"Processing failed: {type(exc).__name__}.")]
    _fail(following.pk, errors, FOLLOWING, started_at=following.started_at)
    following.refresh_from_db()
    return following


def _is_behind_others(upload):
    """Out of sandbox: an earlier upload that failed, waits, or is not processed yet holds this one."""
    earlier = Upload.objects.filter(integration_id=upload.integration_id, id__lt=upload.id)
    return (earlier.filter(status=Status.FAILED, sandbox=False).exists()
            or earlier.filter(status__in=[Status.WAITING, Status.QUEUED, Status.PROCESSING]).exists())


def _queue(upload_ids):
    for upload_id in upload_ids:
        queue.process_upload(upload_id)


def release_next_upload(integration_id):
    """Queue the oldest upload that waits, unless a failed one still holds it; returns its id.

    Called when an upload is processed, retried or skipped, and when the integration leaves
    Sandbox Mode; the released upload, once processed, releases the next one.
    """
    with transaction.atomic():
        integration = Integration.objects.select_for_update(no_key=True).filter(pk=integration_id).first()
        if integration is None:
            return None
        uploads = Upload.objects.filter(integration=integration)
        if not integration.sandbox and uploads.filter(status=Status.FAILED, sandbox=False).exists():
            return None
        if integration.sandbox:
            # In Sandbox Mode nothing waits for anything: release them all.
            waiting = list(uploads.filter(status=Status.WAITING).order_by("id").values_list("id", flat=True))
        else:
            waiting = list(uploads.filter(status=Status.WAITING).order_by("id").values_list("id", flat=True)[:1])
        if not waiting:
            return None
        Upload.objects.filter(id__in=waiting, status=Status.WAITING).update(
            status=Status.QUEUED, message="", queued_at=timezone.now())
        transaction.on_commit(lambda: _queue(waiting))
    return waiting[0]


def requeue_stalled_uploads():
    """Send the processing task again for uploads whose task was lost; returns the ids it was
    sent for.

    Stalled: queued, or processing, for longer than PORTAL_REQUEUE_AFTER_SECONDS. The
    filesystem broker forgets a message once a worker has read it, so a worker that dies
    mid-task loses it; any broker can lose one. Processing is idempotent (see
    process_upload), so a task that was only slow is harmless to send twice. One task per
    integration, for its oldest stalled upload: its batch goes on with the others (and a long
    backlog does not cost a task per upload at every check). Runs every few seconds
    (settings.CELERY_BEAT_SCHEDULE).
    """
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.PORTAL_REQUEUE_AFTER_SECONDS)
    queued_long_ago = Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True, created_at__lt=cutoff)
    stalled = Upload.objects.filter(Q(status=Status.QUEUED) & queued_long_ago
                                    | Q(status=Status.PROCESSING, started_at__lt=cutoff))
    oldest = {}
    for integration_id, upload_id in stalled.order_by("id").values_list("integration_id", "id"):
        oldest.setdefault(integration_id, upload_id)
    upload_ids = sorted(oldest.values())
    if upload_ids:
        stalled.filter(status=Status.QUEUED).update(queued_at=now)
        log.warning("Processing of upload(s) stalled; queued again, with the uploads behind them: %s", upload_ids)
        _queue(upload_ids)
    return upload_ids


@transaction.atomic
def retry_upload(upload, actor):
    """An editor asks to process a failed upload again (it re-reads its stored file)."""
    updated = Upload.objects.filter(pk=upload.pk, status=Status.FAILED).update(
        status=Status.QUEUED, errors=[], message="", queued_at=timezone.now(), started_at=None, finished_at=None)
    if updated:
        record(upload.tenant, actor, Action.UPLOAD_RETRIED, f"Upload #{upload.pk}", upload.integration)
        transaction.on_commit(lambda: _queue([upload.pk]))
    return bool(updated)


@transaction.atomic
def skip_upload(upload, actor):
    """An editor gives up on a failed upload, so that the ones behind it are processed."""
    updated = Upload.objects.filter(pk=upload.pk, status=Status.FAILED).update(
        status=Status.SKIPPED, message="Skipped; later uploads were released.")
    if updated:
        record(upload.tenant, actor, Action.UPLOAD_SKIPPED, f"Upload #{upload.pk}", upload.integration)
        transaction.on_commit(lambda: release_next_upload(upload.integration_id))
    return bool(updated)
