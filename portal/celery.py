"""The Celery app, configured from the Django settings (CELERY_* names)."""

import gc
import os

from celery import Celery
from celery.signals import task_postrun, worker_process_init, worker_ready
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_postrun.connect
def close_broken_connections(**kwargs):
    """A worker keeps its database connections from task to task (CELERY_DB_REUSE_MAX). One that
    a task found broken (the database restarted, or failed over) is closed here, so that the next
    task, or the next try of the same one, opens a new connection instead of failing on the dead
    one until it is recycled. Only a connection that met an error is checked; the others cost
    nothing."""
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred:
            connection.close_if_unusable_or_obsolete()


@worker_ready.connect
@worker_process_init.connect
def freeze_what_startup_loaded(**kwargs):
    """The objects the worker loaded at startup (Django, its models, pandas, the protocols: about
    190,000) are left out of the garbage collector's full collections, which otherwise walk
    them all: one such pause cost 75-83 ms in the middle of processing a large file
    (docs/performance.md). In the process that runs the tasks: the worker itself with the
    thread or solo pool, each child with prefork."""
    gc.collect()
    gc.freeze()
