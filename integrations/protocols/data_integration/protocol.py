"""Seed 000 declared to the registry: its settings (the Data Format), credential, routes,
check, processing, purge, outbound client and demo."""

import datetime
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, fields

from django import forms
from django.core.validators import RegexValidator
from django.urls import path, reverse

from integrations import registry, services
from integrations.forms import FieldKeysField, ProtocolSettingsForm
from integrations.models import Integration
from uploads.models import MetricValue

from . import inbound
from .client import DataIntegrationClient
from .parsing import MAX_USER_CHARACTERS, data_format_of, parse_upload
from .values import Summary, summarize, write_plain_values, write_values

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

    @property
    def fingerprint(self):
        """Every setting and metric that what is read from a file depends on, as one string."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metrics"}
        settings["metrics"] = [(m.pk, m.source_key, m.aggregation) for m in self.metrics]
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# A file this large has its values summarized by the check, which parsed it anyway, for processing
# to read back (Checked.prepared): the 15 MB benchmark file's parse is 0.07-0.15 s, reading its
# summary back about 2 ms. Below it, storing a second file would cost more than the parse it saves.
PREPARE_FROM_BYTES = 1024 * 1024


def _prepared_summary(upload, fmt):
    """The summary the check stored with the upload, if made under this same Data Format."""
    if not upload.prepared:
        return None
    try:
        with upload.prepared.open("rb") as stored:
            return Summary.load(io.BytesIO(stored.read()), fmt.fingerprint)
    except OSError:  # gone: the file is parsed again
        return None


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
        fmt, data = DataFormat.of(integration), file.read()
        plain = plain_json_records(fmt, data, content_type)
        if plain is not None:
            return registry.Checked(records=len(plain), extension="json")
        parsed = parse_upload(fmt, data, content_type)
        prepared = None
        if integration.is_inbound and fmt.metrics and len(data) >= PREPARE_FROM_BYTES:
            prepared = summarize(parsed, fmt.metrics).dump(fmt.fingerprint)
        return registry.Checked(records=parsed.records, extension=parsed.data_format, prepared=prepared)

    def process(self, upload, file):
        fmt = DataFormat.of(upload.integration)
        summary = _prepared_summary(upload, fmt)
        if summary is not None:
            records, written = upload.records, write_values(fmt, upload, summary)
        else:
            data = file.read()
            plain = plain_json_records(fmt, data, upload.content_type)
            if plain is not None:
                records, written = len(plain), write_plain_values(fmt, upload, plain)
            else:
                parsed = parse_upload(fmt, data, upload.content_type)
                records, written = parsed.records, write_values(fmt, upload, summarize(parsed, fmt.metrics))
        return registry.Processed(records=records, values_written=written,
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


# --- Small, plain JSON uploads, read without pandas ------------------------------------------------
# A 1 KB upload spent about 6 ms building pandas frames and series for a dozen records, most of
# its time in the request. A small JSON body whose every record is plainly valid is read here in
# plain Python instead; anything less plain (nesting, a value that is neither a string nor a
# number, a date or a number not written the simplest way, a rule that needs the database) goes to
# parse_upload, which alone describes what is wrong. So this path accepts only what parse_upload
# accepts, with the same records (tests/test_performance_paths.py holds the two side by side).

PLAIN_JSON_BYTES = 64 * 1024
# Each Data Format's dates written the plain way: (pattern, the order of day, month, year in it).
PLAIN_DATES = {
    "%m/%d/%Y": (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), "mdy"),
    "%d/%m/%Y": (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), "dmy"),
    "%Y-%m-%d": (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), "ymd"),
    "%d.%m.%Y": (re.compile(r"(\d{2})\.(\d{2})\.(\d{4})"), "dmy"),
    "%Y/%m/%d": (re.compile(r"(\d{4})/(\d{2})/(\d{2})"), "ymd"),
}
PLAIN_NUMBER = re.compile(r"-?\d{1,15}(\.\d{1,15})?")
PLAIN_USER = re.compile(r"[!-~]+")  # printable ASCII, no space
LARGEST_PLAIN_INT = 2 ** 53  # every integer up to it is exactly a float


class NotPlain(Exception):
    pass


def _not_plain(*args):
    raise NotPlain


def plain_json_records(fmt, data, content_type):
    """[(user, date, {source key: value})] for a small JSON body of plainly valid records; None
    for anything else (parse_upload then reads it, and says what is wrong)."""
    if (len(data) > PLAIN_JSON_BYTES or fmt.data_format != "json" or data_format_of(content_type) != "json"
            or fmt.unknown_user != "create" or fmt.strptime_format not in PLAIN_DATES):
        return None
    numbers = {m.source_key for m in fmt.metrics if m.aggregation != "count"}
    if fmt.user_key == fmt.date_key or {m.source_key for m in fmt.metrics} & {fmt.user_key, fmt.date_key}:
        return None  # a metric of the user or date column: the long way
    keys = [key for key in dict.fromkeys([*fmt.field_keys, *(m.source_key for m in fmt.metrics)])
            if key not in (fmt.user_key, fmt.date_key)]
    try:
        records = json.loads(data.decode("utf-8-sig"), parse_constant=_not_plain)
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list) or not records:
            return None
        dates = {}
        return [(_plain_user(fmt, record[fmt.user_key]), _plain_date(fmt, record[fmt.date_key], dates),
                 {key: _plain_value(record[key], key in numbers) for key in keys})
                for record in records if _all_plain(record)]
    except (NotPlain, KeyError, TypeError, ValueError, RecursionError):
        return None


def _all_plain(record):
    """A record (an object) whose values are all strings, numbers, booleans or null: nothing to flatten."""
    if not isinstance(record, dict) or any(isinstance(v, (dict, list)) for v in record.values()):
        raise NotPlain
    return True


def _plain_user(fmt, value):
    if not isinstance(value, str):
        raise NotPlain
    user = value.strip().lower()
    if (len(user) > MAX_USER_CHARACTERS or not PLAIN_USER.fullmatch(user)
            or ("email" in fmt.user_key.lower() and "@" not in user)):
        raise NotPlain
    return user


def _plain_date(fmt, value, seen):
    if value not in seen:
        pattern, order = PLAIN_DATES[fmt.strptime_format]
        match = pattern.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise NotPlain
        parts = dict(zip(order, map(int, match.groups())))
        if not 1900 <= parts["y"] <= 2200:  # well inside what every datetime64 unit holds
            raise NotPlain
        seen[value] = datetime.date(parts["y"], parts["m"], parts["d"])  # ValueError: no such day
    return seen[value]


def _plain_value(value, number):
    """A metric's number as a float; any other field's value as it is (a string or a number)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise NotPlain
    if not number:
        return value
    if isinstance(value, str):
        if not PLAIN_NUMBER.fullmatch(value):
            raise NotPlain
        return float(value)
    if isinstance(value, int) and abs(value) > LARGEST_PLAIN_INT or not math.isfinite(value):
        raise NotPlain
    return float(value)


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
