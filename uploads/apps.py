from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"

    def ready(self):
        # Registration side effects, as Django documents for ready(): the signal receivers, and
        # the tasks, so that work queued by task name (uploads.queue) finds them in every process.
        from . import receivers, tasks  # noqa: F401
