"""Celery tasks of reference 001's pulls: thin, they call pulls.py; safe to run twice."""

from celery import shared_task

from . import pulls


@shared_task(acks_late=True, ignore_result=True)
def run_pull(pull_id, step):
    """Make one step of a pull, and queue the next one after the wait it asks for (a countdown:
    a pull that waits for the vendor's limits holds no worker)."""
    delay = pulls.run_step(pull_id, step)
    if delay is not None:
        pulls.queue_step(pull_id, step + 1, countdown=delay)


@shared_task(ignore_result=True)
def pull_due():
    started, resumed = pulls.pull_due()
    return {"started": started, "resumed": resumed}
