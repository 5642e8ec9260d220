"""Celery tasks: thin, load by id and call the plain function; safe to run twice."""

from celery import shared_task

from . import processing


@shared_task(acks_late=True)
def process_upload(upload_id):
    upload = processing.process_upload(upload_id)
    return upload.status if upload is not None else None


@shared_task(acks_late=True)
def release_waiting_uploads(integration_id):
    return processing.release_waiting_uploads(integration_id)


@shared_task(ignore_result=True)
def requeue_stalled_uploads():
    return processing.requeue_stalled_uploads()
