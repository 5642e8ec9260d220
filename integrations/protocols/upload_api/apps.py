from django.apps import AppConfig


class UploadApiConfig(AppConfig):
    name = "integrations.protocols.upload_api"
    label = "upload_api"
    verbose_name = "Upload API"
    protocol = "integrations.protocols.upload_api.protocol.UploadApi"
