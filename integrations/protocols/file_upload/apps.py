from django.apps import AppConfig


class FileUploadConfig(AppConfig):
    name = "integrations.protocols.file_upload"
    label = "file_upload"
    verbose_name = "File Upload API"
    protocol = "integrations.protocols.file_upload.protocol.FileUpload"

    def ready(self):
        # Registers the tasks with Celery here too, so that they are known wherever they are
        # queued by name (and run in-process when tasks are eager).
        from . import tasks  # noqa: F401
