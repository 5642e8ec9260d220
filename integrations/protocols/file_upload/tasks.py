"""Celery tasks of the File Upload API: thin, they call the work's own modules; safe to run twice."""

from celery import shared_task

from . import arrivals, receiving, s3


@shared_task(acks_late=True, ignore_result=True)
def email_admins(notification_id):
    """Email a file's arrival to the tenant's admins (once: a second run finds it sent)."""
    return arrivals.email_admins(notification_id)


@shared_task(ignore_result=True)
def check_files():
    """Every minute (Celery beat): files that arrived in S3, URLs that expired unused, temporary
    files left by PUTs whose process was killed."""
    found, expired_in_s3 = s3.check_arrivals()
    expired, deleted = receiving.sweep()
    return {"arrived": found, "expired": expired + expired_in_s3, "partial_files_deleted": deleted}
