"""Celery tasks: thin, load by id and call the plain function; safe to run twice."""

from celery import shared_task

from . import processing, queue
from .delivery import dispatch


@shared_task(acks_late=True)
def process_upload(upload_id):
    upload = processing.process_upload(upload_id)
    return upload.status if upload is not None else None


@shared_task(ignore_result=True)
def requeue_stalled_uploads():
    return processing.requeue_stalled_uploads()


@shared_task(acks_late=True, ignore_result=True)
def send_dispatch(dispatch_id, attempt):
    """Make one attempt of an outbound dispatch and schedule the next one if there is one.

    Idempotent: run_attempt claims attempt n with a conditional update, so a duplicated or
    redelivered task sends nothing twice.
    """
    delay = dispatch.run_attempt(dispatch_id, attempt)
    if delay is not None:
        queue.send_dispatch(dispatch_id, attempt + 1, countdown=delay)
        return
    # Not ours to make now. If another worker holds this attempt, it may have died with it:
    # look again once its claim has expired (then run_attempt takes it over, or finds it done).
    check_in = dispatch.abandoned_attempt_check_in(dispatch_id, attempt)
    if check_in is not None:
        queue.send_dispatch(dispatch_id, attempt, countdown=check_in)


@shared_task(ignore_result=True)
def requeue_stalled_dispatches():
    stalled = dispatch.stalled_dispatches()
    for dispatch_id, attempt in stalled:
        queue.send_dispatch(dispatch_id, attempt)
    return sorted(dispatch_id for dispatch_id, _ in stalled)
