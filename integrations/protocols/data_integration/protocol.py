"""Seed 000 declared to the registry: its settings (the Data Format), credential, routes,
check, processing, purge, outbound client and demo."""

from dataclasses import dataclass

from django import forms
from django.core.validators import RegexValidator
from django.urls import path, reverse

from integrations import registry, services
from integrations.forms import FieldKeysField, ProtocolSettingsForm
from integrations.models import Integration
from uploads.models import MetricValue

from . import inbound
from .client import DataIntegrationClient
from .parsing import parse_upload
from .values import write_values

# What users type (as in the seed's "8/16/2016") → what strptime reads.
DATE_FORMATS = {
    "M/D/YYYY": "%m/%d/%Y",
    "D/M/YYYY": "%d/%m/%Y",
    "YYYY-MM-DD": "%Y-%m-%d",
    "DD.MM.YYYY": "%d.%m.%Y",
    "YYYY/MM/DD": "%Y/%m/%d",
}
NO_METRICS = "records received, no metrics configured"


class DataFormatForm(ProtocolSettingsForm):
    """The Data Format tab of seed 000: which data type, format, field keys and dates."""

    data_type = forms.CharField(
        max_length=64, label="Data type",
        validators=[RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "Lower-case letters, digits, '-' and '_' only.")],
        help_text="The DATA_TYPE in the endpoint: /api/v1/data/<data_type>/",
    )
    data_format = forms.ChoiceField(label="Data Format", choices=[("csv", "CSV"), ("json", "JSON")], initial="csv")
    field_keys = FieldKeysField(required=False, help_text="CSV headers or JSON keys the file must contain, comma-separated")
    user_key = forms.CharField(max_length=100, initial="email", label="Field key that names the user")
    date_key = forms.CharField(max_length=100, initial="date", label="Field key that holds the date")
    date_format = forms.ChoiceField(choices=[(k, k) for k in DATE_FORMATS], initial="M/D/YYYY")
    flatten_json = forms.BooleanField(required=False, initial=True, label="Flatten nested JSON",
                                      help_text="Nested keys become e.g. user.email (JSON only)")
    flatten_separator = forms.CharField(max_length=3, required=False, initial=".", strip=False,
                                        label="Separator for flattened keys")
    unknown_user = forms.ChoiceField(
        label="When a row names an unknown user", initial="create",
        choices=[("create", "Create the account"), ("reject", "Reject the upload")],
    )

    def clean_data_type(self):
        data_type = self.cleaned_data["data_type"]
        if self.key_taken(data_type):
            raise forms.ValidationError("This tenant already has an integration with this data type.")
        return data_type

    def clean(self):
        data = super().clean()
        keys = data.get("field_keys") or []
        for name in ("user_key", "date_key"):
            if data.get(name) and keys and data[name] not in keys:
                self.add_error(name, f"“{data[name]}” is not one of the field keys.")
        return data


@dataclass
class DataFormat:
    """An integration's Data Format as parsing and processing read it."""

    tenant_id: int
    integration_id: int
    data_format: str
    field_keys: list
    user_key: str
    date_key: str
    date_format: str
    flatten_json: bool
    flatten_separator: str
    unknown_user: str
    metrics: list

    @classmethod
    def of(cls, integration):
        settings = {name: field.initial for name, field in DataFormatForm.base_fields.items()}
        settings.update(integration.settings or {})
        return cls(
            tenant_id=integration.tenant_id, integration_id=integration.pk, data_format=settings["data_format"],
            field_keys=list(settings["field_keys"] or []), user_key=settings["user_key"],
            date_key=settings["date_key"], date_format=settings["date_format"],
            flatten_json=bool(settings["flatten_json"]), flatten_separator=settings["flatten_separator"] or "",
            unknown_user=settings["unknown_user"],
            metrics=list(integration.metrics.all()) if integration.pk else [],
        )

    @property
    def strptime_format(self):
        return DATE_FORMATS[self.date_format]


class DataIntegration(registry.Protocol):
    slug = "data_integration"
    label = "Data integration (POST /api/v1/data/<data_type>/)"
    short_label = "Data integration"
    issued = registry.IssuedCredential(kind="auth_token", label="AUTH_TOKEN",
                                       how_sent="Authorization: Token AUTH_TOKEN")
    vault_fields = (registry.VaultField("auth_token", "Vendor AUTH_TOKEN",
                                        "The token the vendor issued you. Stored encrypted, never shown again."),)
    settings_form = DataFormatForm
    settings_tab = "Data Format"
    key_field = "data_type"
    key_label = "Data type"
    client_class = DataIntegrationClient
    has_metrics = True
    processed_noun = ("metric value", "metric values")
    upload_help = "CSV or JSON, as the integration's Data Format says; 15 MB at most."

    def urlpatterns(self):
        return [
            # The trailing slash is part of the protocol; without it the view says so.
            path("v1/data/<slug:data_type>/", inbound.DataUploadView.as_view(), name="data_upload"),
            path("v1/data/<slug:data_type>", inbound.missing_trailing_slash, name="data_upload_no_slash"),
        ]

    def endpoint_path(self, integration):
        return reverse("data_upload", args=[integration.key])

    def metric_source_keys(self, integration):
        fmt = DataFormat.of(integration)
        return [k for k in fmt.field_keys if k not in (fmt.user_key, fmt.date_key)]

    def check(self, integration, file, content_type):
        parsed = parse_upload(DataFormat.of(integration), file.read(), content_type)
        return registry.Checked(records=parsed.records, extension=parsed.data_format)

    def process(self, upload, file):
        fmt = DataFormat.of(upload.integration)
        parsed = parse_upload(fmt, file.read(), upload.content_type)
        written = write_values(fmt, upload, parsed)
        return registry.Processed(records=parsed.records, values_written=written,
                                  message="" if fmt.metrics else NO_METRICS)

    def purge(self, integration):
        deleted, _ = MetricValue.objects.filter(integration=integration).delete()
        return deleted

    def processed_count(self, integration):
        return MetricValue.objects.filter(integration=integration).count()

    def demo(self, tenant, actor, base_url):
        found = []
        for spec in DEMO_INTEGRATIONS:
            spec = dict(spec)
            metrics = spec.pop("metrics")
            integration = Integration.objects.filter(tenant=tenant, protocol=self.slug, direction="inbound",
                                                     key=spec["data_type"]).first()
            if integration is None:
                integration = services.create_integration(tenant, actor, protocol=self.slug, metrics=metrics, **spec)
            token = services.regenerate_integration_token(integration, actor)
            fmt = DataFormat.of(integration)
            found.append({
                "name": integration.name, "protocol": self.slug, "direction": "inbound",
                "data_type": integration.key, "data_format": fmt.data_format, "field_keys": fmt.field_keys,
                "endpoint": base_url + integration.endpoint_path, "auth_token": token,
            })
        return found


DEMO_INTEGRATIONS = [
    {
        "name": "Calls (JSON)", "data_type": "calls", "data_format": "json", "field_keys": ["email", "date", "calls"],
        "metrics": [{"name": "calls", "source_key": "calls", "aggregation": "sum"}],
    },
    {
        "name": "Activity (CSV)", "data_type": "activity", "data_format": "csv",
        "field_keys": ["email", "date", "calls", "talk_minutes", "deals"],
        "metrics": [{"name": n, "source_key": n, "aggregation": "sum"} for n in ("calls", "talk_minutes", "deals")],
    },
]
