from django import forms
from django.db import models

from .models import ApiToken, Direction, Integration, Metric, Protocol


def https_by_default(model_field, **kwargs):
    """Model form fields, with URLs typed without a scheme taken as https (Django 6's default)."""
    if isinstance(model_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return model_field.formfield(**kwargs)


class FieldKeysField(forms.CharField):
    """Field keys typed as a comma- or line-separated list."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "email, date, calls"})

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        text = super().to_python(value) or ""
        keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
        if len(set(keys)) != len(keys):
            raise forms.ValidationError("Each field key may appear only once.")
        return keys


class VendorCredentialsField(forms.CharField):
    """Write-only: the form never shows a stored secret back; blank keeps the current one."""

    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class IntegrationCreateForm(forms.ModelForm):
    field_keys = FieldKeysField(required=False, help_text="CSV headers or JSON keys, comma-separated")
    vendor_token = VendorCredentialsField(
        label="Vendor AUTH_TOKEN", required=False,
        help_text="Outbound only: the token the vendor issued you. Stored encrypted, never shown again.",
    )

    class Meta:
        model = Integration
        fields = ["name", "direction", "protocol", "data_type", "data_format", "field_keys", "endpoint_url",
                  "vendor_token"]
        formfield_callback = https_by_default
        widgets = {"direction": forms.RadioSelect}

    def __init__(self, *args, tenant, **kwargs):
        self.tenant = tenant
        super().__init__(*args, **kwargs)
        self.instance.tenant = tenant
        # What the portal speaks today; the other reference protocols arrive one module each.
        self.fields["protocol"].choices = [(Protocol.DATA_INTEGRATION, Protocol.DATA_INTEGRATION.label)]
        self.fields["endpoint_url"].help_text = "Outbound only: the vendor's URL, e.g. https://acme.example.com/api/v1/data/calls/"

    def clean(self):
        data = super().clean()
        if data.get("direction") == Direction.OUTBOUND and not data.get("endpoint_url"):
            self.add_error("endpoint_url", "An outbound integration needs the vendor's endpoint.")
        if data.get("direction") == Direction.OUTBOUND and not data.get("vendor_token"):
            self.add_error("vendor_token", "An outbound integration needs the AUTH_TOKEN the vendor issued you.")
        if data.get("direction") == Direction.INBOUND:
            data["vendor_token"] = ""  # an inbound integration keeps no vendor secret
        return data

    def validate_unique(self):
        # tenant is set on the instance, so the (tenant, direction, data_type) check runs here.
        try:
            self.instance.validate_constraints()
        except forms.ValidationError:
            self.add_error("data_type", "This tenant already has an integration with this data type.")


class SettingsForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = ["name", "enabled", "sandbox"]
        labels = {"sandbox": "Sandbox Mode"}
        help_texts = {
            "sandbox": "In Sandbox Mode, values are not shown outside the integration and a bad file "
            "does not halt processing. Unpurged sandbox data counts once Sandbox Mode is off.",
        }


class OutboundSettingsForm(forms.ModelForm):
    vendor_token = VendorCredentialsField(
        label="Replace vendor AUTH_TOKEN", required=False,
        help_text="Leave blank to keep the stored one. It is never shown back.",
    )

    class Meta:
        model = Integration
        fields = ["name", "enabled", "sandbox", "endpoint_url", "max_attempts"]
        formfield_callback = https_by_default
        labels = {"sandbox": "Sandbox Mode (dry run: nothing is sent)"}


class DataFormatForm(forms.ModelForm):
    field_keys = FieldKeysField(help_text="CSV headers or JSON keys the file must contain, comma-separated")

    class Meta:
        model = Integration
        fields = ["data_format", "field_keys", "user_key", "date_key", "date_format", "flatten_json",
                  "flatten_separator", "unknown_user"]
        labels = {
            "data_format": "Data Format",
            "user_key": "Field key that names the user",
            "date_key": "Field key that holds the date",
            "unknown_user": "When a row names an unknown user",
            "flatten_separator": "Separator for flattened keys",
        }
        help_texts = {"flatten_json": "Nested keys become e.g. user.email (JSON only)"}

    def clean(self):
        data = super().clean()
        keys = data.get("field_keys") or []
        for name in ("user_key", "date_key"):
            if data.get(name) and keys and data[name] not in keys:
                self.add_error(name, f"“{data[name]}” is not one of the field keys.")
        return data


class MetricForm(forms.ModelForm):
    class Meta:
        model = Metric
        fields = ["name", "source_key", "aggregation"]

    def __init__(self, *args, integration, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.integration = integration
        keys = [k for k in integration.field_keys if k not in (integration.user_key, integration.date_key)]
        self.fields["source_key"] = forms.ChoiceField(
            label="Source field key", choices=[(k, k) for k in keys],
            help_text="Add field keys on the Data Format tab first." if not keys else "",
        )

    def validate_unique(self):
        try:
            self.instance.validate_constraints()
        except forms.ValidationError:
            self.add_error("name", "This integration already has a metric with this name.")


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "scope"]
        help_texts = {"name": "Say what will use it, e.g. “nightly export”."}
