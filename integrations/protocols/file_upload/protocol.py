"""Reference 003 declared to the registry: its two endpoints, the API Tokens page and the
"Files received" tab, what becomes of a file received (kept, or processed into a data
integration), its outbound client and its demo."""

import contextlib

from django.urls import path, reverse

from integrations import registry, services
from integrations.models import Integration
from uploads.errors import IntakeError, error

from . import arrivals, inbound, s3, streaming, tokens, views
from .client import FileUploadClient
from .forms import DATA_INTEGRATION
from .limits import MAX_FILE_BYTES
from .models import FileSlot
from .slots import SLUG, file_upload_tokens, receiving_integration

DEMO_TOKEN = "Demo: activity files"
EXTENSIONS = {"text/csv": "csv", "application/json": "json", "application/vnd.ms-excel": "csv"}


class FileUpload(registry.Protocol):
    slug = SLUG
    label = "File Upload API (POST for a URL, then PUT the file)"
    short_label = "File Upload API"
    directions = (registry.INBOUND, registry.OUTBOUND)
    issued = None  # File Upload API tokens, on the API Tokens page (at most 5 active per tenant)
    vault_fields = (registry.VaultField(
        "api_token", "Vendor File Upload API token",
        "Sent as Auth-Api-Token when asking the vendor for a URL (never with the file). Stored encrypted, "
        "never shown again."),)
    settings_form = None
    client_class = FileUploadClient
    max_upload_bytes = MAX_FILE_BYTES
    has_metrics = False
    processed_noun = ("value", "values")  # it writes none of its own: a linked data integration's are that one's
    audit_actions = ((tokens.TOKEN_LINKED, "File Upload API token linked"), (arrivals.FILE_RECEIVED, "File received"))
    upload_help = ("Any file up to 5 GB; CSV or JSON preferred. Inbound it is kept for your team; outbound it is "
                   "sent to the vendor (a URL from its step 1, then a PUT).")

    def urlpatterns(self):
        return [
            path("v1/file-upload/", inbound.request_url, name="file_upload_request"),
            path("v1/file-upload", inbound.request_url, name="file_upload_request_no_slash"),
            path("v1/file-upload/<int:pk>/<str:name>", inbound.put_file, name="file_upload_put"),
        ]

    def page_urlpatterns(self):
        return views.urlpatterns

    def integration_tabs(self, integration):
        return [("Files received", "file_upload_files")] if integration.is_inbound else []

    def endpoint_path(self, integration):
        return reverse("file_upload_request")

    def check(self, integration, file, content_type):
        # Any file is taken (the seed prefers CSV or JSON); there is nothing to parse before it is kept.
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        return registry.Checked(records=0, extension=EXTENSIONS.get(media_type, ""))

    def process(self, upload, file):
        slot = FileSlot.objects.filter(upload=upload).select_related("process_into").first()
        if slot is None or not slot.linked:
            return registry.Processed(records=0, message="Kept for your team; nothing to process.")
        if slot.process_into is None:
            raise IntakeError([error("integration_gone", "The data integration this file was sent for has been "
                                                         "deleted; nothing was processed.")])
        if s3.enabled():
            # Read from S3 as a stream: the storage's own file object would fetch it whole first.
            with contextlib.closing(s3.open_stream(upload.file.name)) as stream:
                return streaming.process_file(slot.process_into, upload, stream)
        return streaming.process_file(slot.process_into, upload, file)

    def demo(self, tenant, actor, base_url):
        """A File Upload API token whose files are processed into the demo's CSV integration."""
        activity = Integration.objects.filter(tenant=tenant, protocol=DATA_INTEGRATION, direction=registry.INBOUND,
                                              key="activity").first()
        for old in file_upload_tokens(tenant).filter(name=DEMO_TOKEN).active():
            services.revoke_api_token(old, actor)
        _, token = tokens.issue(tenant, actor, DEMO_TOKEN, activity)
        integration = receiving_integration(tenant, actor)
        return [{"name": integration.name, "protocol": self.slug, "direction": registry.INBOUND,
                 "request_url": base_url + reverse("file_upload_request"), "api_token": token,
                 "process_into": activity.key if activity else None}]
