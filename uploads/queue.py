"""Putting work on the Celery queue, by task name.

Processing, the intake and the delivery engine queue work here; uploads/tasks.py holds the
tasks, thin wrappers that call those same modules. Naming the task (instead of importing
it) keeps the dependency one way: tasks → work, never back.
"""

from portal.celery import app

PROCESS_UPLOAD = "uploads.tasks.process_upload"
SEND_DISPATCH = "uploads.tasks.send_dispatch"


def process_upload(upload_id):
    # What became of the upload is on its row: no result to store in the result backend.
    app.signature(PROCESS_UPLOAD, args=(upload_id,)).apply_async(ignore_result=True)


def send_dispatch(dispatch_id, attempt, countdown=None):
    app.signature(SEND_DISPATCH, args=(dispatch_id, attempt)).apply_async(countdown=countdown)
