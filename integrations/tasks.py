"""Background work of the integrations app: thin tasks that load by id and call a function."""

from celery import shared_task

from . import outbound


@shared_task(acks_late=True, ignore_result=True)
def send_dispatch(dispatch_id, attempt):
    """Make one attempt of an outbound dispatch and schedule the next one if it should be retried.

    Idempotent: run_attempt claims attempt n with a conditional update, so a duplicated or
    redelivered task sends nothing twice.
    """
    delay = outbound.run_attempt(dispatch_id, attempt)
    if delay is not None:
        send_dispatch.apply_async((dispatch_id, attempt + 1), countdown=delay)
        return
    # Not ours to make now. If another worker holds this attempt, it may have died with it:
    # look again once its claim has expired (then run_attempt takes it over, or finds it done).
    check_in = outbound.abandoned_attempt_check_in(dispatch_id, attempt)
    if check_in is not None:
        send_dispatch.apply_async((dispatch_id, attempt), countdown=check_in)


@shared_task(ignore_result=True)
def requeue_stalled_dispatches():
    return outbound.requeue_stalled_dispatches()
