"""Celery tasks: thin, load by id and call the plain function; safe to run twice."""

from celery import shared_task

from portal.db import DATABASE_BUSY

from . import processing, queue, request_log
from .delivery import dispatch


@shared_task(bind=True, acks_late=True, max_retries=processing.BUSY_TRIES - 1)
def process_upload(self, upload_id):
    """A busy or unreachable database: tried again after 1, 2, 4, 8 and 16 s, then given up."""
    try:
        upload = processing.process_upload(upload_id)
    except DATABASE_BUSY as exc:
        if self.request.retries < self.max_retries:
            raise self.retry(countdown=2 ** self.request.retries) from exc
        upload = processing.give_up(upload_id, exc)
    return upload.status if upload is not None else None


@shared_task(ignore_result=True)
def requeue_stalled_uploads():
    return processing.requeue_stalled_uploads()


@shared_task(acks_late=True, ignore_result=True, autoretry_for=DATABASE_BUSY, max_retries=processing.BUSY_TRIES - 1,
             retry_backoff=1, retry_jitter=False)
def send_dispatch(dispatch_id, attempt):
    """Make one attempt of an outbound dispatch and schedule the next one if there is one.

    Idempotent: the attempt is claimed with a conditional update, so a duplicated or
    redelivered task sends nothing twice. A busy or unreachable database: tried again after 1,
    2, 4, 8 and 16 s; after that, the stalled-dispatch check sends it again.
    """
    following = dispatch.send(dispatch_id, attempt)
    if following is not None:
        next_attempt, countdown = following
        queue.send_dispatch(dispatch_id, next_attempt, countdown=countdown)


@shared_task(ignore_result=True)
def prune_request_log():
    return request_log.prune()


@shared_task(ignore_result=True)
def requeue_stalled_dispatches():
    stalled = dispatch.stalled_dispatches()
    for dispatch_id, attempt in stalled:
        queue.send_dispatch(dispatch_id, attempt)
    return sorted(dispatch_id for dispatch_id, _ in stalled)
