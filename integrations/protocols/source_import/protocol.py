"""Reference 004 declared to the registry: its settings (the Source tab), credential, route,
the feedback list of the REST API, the Entries tab, check, processing, purge, outbound client
and demo."""

import math
from datetime import datetime

import pandas as pd
from django import forms
from django.core.validators import RegexValidator
from django.urls import path, reverse

from integrations import registry, services
from integrations.forms import ProtocolSettingsForm
from integrations.models import Integration

from . import api, inbound, views
from .client import SourceImportClient
from .files import read_file
from .mapping import DEFAULTS, MAX_BATCH_SIZE, Mapping
from .models import FeedbackEntry
from .payload import is_json, read_request
from .store import store_entries

MAPPING_FIELDS = ("date_key", "name_key", "content_key", "date_format", "batch_size")
DEMO_SOURCE = {"name": "Feedback (REST source)", "source_id": "demo-feedback"}


class SourceForm(ProtocolSettingsForm):
    """The Source tab: the source_id and, for a source the portal sends to, which columns of
    a file make an entry. Blank mapping fields take their defaults."""

    source_id = forms.CharField(
        max_length=100, label="Source ID",
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                                   "Letters, digits, '_', '.' and '-' only, starting with a letter or digit.")],
        help_text="The source_id of the requests: the REST source's own (inbound), or the one the vendor gave "
                  "you (outbound).",
    )
    date_key = forms.CharField(max_length=100, required=False, initial=DEFAULTS["date_key"],
                               label="Column that holds the date")
    name_key = forms.CharField(max_length=100, required=False, initial=DEFAULTS["name_key"],
                               label="Column that holds the name")
    content_key = forms.CharField(max_length=100, required=False, initial=DEFAULTS["content_key"],
                                  label="Column that holds the content")
    date_format = forms.CharField(max_length=100, required=False, initial=DEFAULTS["date_format"], strip=False,
                                  label="Date format of the file",
                                  help_text="As Python's strptime reads it, e.g. %d/%m/%Y %H:%M; dates are sent as "
                                            "YYYY-MM-DD HH:mm:ss.")
    batch_size = forms.IntegerField(required=False, initial=DEFAULTS["batch_size"], min_value=1,
                                    max_value=MAX_BATCH_SIZE, label="Entries per request")

    def __init__(self, data=None, *args, integration, **kwargs):
        super().__init__(data, *args, integration=integration, **kwargs)
        if self.integration.is_inbound:
            # A REST source receives the seed's entries as they are: nothing to map.
            for name in MAPPING_FIELDS:
                del self.fields[name]

    def clean_source_id(self):
        source_id = self.cleaned_data["source_id"]
        if self.key_taken(source_id):
            raise forms.ValidationError("This tenant already has a source with this source_id.")
        return source_id

    def clean_date_format(self):
        date_format = self.cleaned_data["date_format"] or DEFAULTS["date_format"]
        sample = datetime(2024, 3, 8, 0, 29)
        try:
            read = pd.to_datetime(sample.strftime(date_format), format=date_format)
        except (ValueError, TypeError):
            read = None
        if read is None or read.date() != sample.date():
            raise forms.ValidationError("Not a date format that reads a year, a month and a day back, "
                                        "e.g. %Y-%m-%d %H:%M:%S.")
        return date_format

    def clean(self):
        data = super().clean()
        if self.integration.is_inbound:
            return data
        for name in ("date_key", "name_key", "content_key", "batch_size"):
            if name in data and data[name] in (None, ""):
                data[name] = DEFAULTS[name]
        keys = [data.get(name) for name in ("date_key", "name_key", "content_key")]
        if None not in keys and len(set(keys)) < len(keys):
            self.add_error(None, "The date, name and content must come from three different columns.")
        return data


class SourceImport(registry.Protocol):
    slug = inbound.PROTOCOL
    label = "Import Data (POST /api/v1/source/import)"
    short_label = "Import Data"
    issued = inbound.API_KEY
    vault_fields = (registry.VaultField("api_key", "Vendor API key",
                                        "The API key the vendor issued you. Stored encrypted, never shown again."),)
    settings_form = SourceForm
    settings_tab = "Source"
    key_field = "source_id"
    key_label = "Source ID"
    client_class = SourceImportClient
    has_metrics = False
    processed_noun = ("feedback entry", "feedback entries")
    upload_help = ("Inbound: an import request's JSON body. Outbound: CSV, or JSON (a list of objects), with the "
                   "columns the Source tab names; 15 MB at most.")

    def urlpatterns(self):
        # The seed writes it without a trailing slash; with one it is the same endpoint, not a redirect.
        view = inbound.ImportView.as_view()
        return [
            path("v1/source/import", view, name="source_import"),
            path("v1/source/import/", view, name="source_import_slash"),
        ]

    def api_urlpatterns(self):
        return api.urlpatterns()

    def page_urlpatterns(self):
        return views.urlpatterns

    def integration_tabs(self, integration):
        # Only a REST source receives entries; an outbound one sends a file's rows and keeps none.
        return [("Entries", "source_import_entries")] if integration.is_inbound else []

    def endpoint_path(self, integration):
        return reverse("source_import")

    def check(self, integration, file, content_type):
        if integration.is_inbound:
            entries = read_request(file.read(), content_type, integration.key)
            return registry.Checked(records=len(entries), extension="json", message=f"{len(entries):,} entries")
        mapping = Mapping.of(integration)
        entries = read_file(mapping, file.read(), content_type)
        batches = math.ceil(len(entries) / mapping.batch_size)
        return registry.Checked(records=len(entries), extension="json" if is_json(content_type) else "csv",
                                message=f"{len(entries):,} entries in {batches} batch{'es' if batches != 1 else ''}")

    def process(self, upload, file):
        # The source_id was checked on arrival; renaming the source since does not undo that.
        entries = read_request(file.read(), upload.content_type, source_id=None)
        new = store_entries(upload, entries)
        return registry.Processed(records=len(entries), values_written=new,
                                  message=f"{len(entries):,} entries, {new:,} new")

    def purge(self, integration):
        deleted, _ = FeedbackEntry.objects.filter(integration=integration).delete()
        return deleted

    def processed_count(self, integration):
        return FeedbackEntry.objects.filter(integration=integration).count()

    def demo(self, tenant, actor, base_url):
        integration = Integration.objects.filter(tenant=tenant, protocol=self.slug, direction=registry.INBOUND,
                                                 key=DEMO_SOURCE["source_id"]).first()
        if integration is None:
            integration = services.create_integration(tenant, actor, protocol=self.slug, **DEMO_SOURCE)
        api_key = services.regenerate_integration_token(integration, actor)
        return [{"name": integration.name, "protocol": self.slug, "direction": registry.INBOUND,
                 "endpoint": base_url + integration.endpoint_path, "source_id": integration.key, "api_key": api_key}]
