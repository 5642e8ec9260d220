import re

from django import forms
from django.db import models

from . import registry
from .models import ApiToken, Integration, Metric


def https_by_default(model_field, **kwargs):
    """Model form fields, with URLs typed without a scheme taken as https (Django 6's default)."""
    if isinstance(model_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return model_field.formfield(**kwargs)


def written_date(day, date_format):
    """A date as a date format typed like "M/D/YYYY" writes it: 8/16/2016."""
    parts = {"YYYY": f"{day.year}", "MM": f"{day.month:02}", "DD": f"{day.day:02}", "M": f"{day.month}",
             "D": f"{day.day}"}
    return re.sub(r"YYYY|MM|DD|M|D", lambda m: parts[m.group(0)], date_format)


class FieldKeysField(forms.CharField):
    """Field keys typed as a comma- or line-separated list."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "email, date, calls"})

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        text = super().to_python(value) or ""
        keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
        if len(set(keys)) != len(keys):
            raise forms.ValidationError("Each field key may appear only once.")
        return keys


class VendorCredentialsField(forms.CharField):
    """Write-only: the form never shows a stored secret back; blank keeps the current one."""

    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class ProtocolSettingsForm(forms.Form):
    do_not_call_in_templates = True  # templates test the class (does the protocol have settings?), never build it
    """Base of a protocol's own settings form (integrations.registry.Protocol.settings_form).

    A field left out of the data takes its initial value, so that a client names only what it
    sets; but a checkbox left out of a browser's POST is unticked, so False.
    """

    def __init__(self, data=None, *args, integration, **kwargs):
        self.integration = integration
        super().__init__(data, *args, **kwargs)
        if self.is_bound:
            from_browser = hasattr(self.data, "getlist")
            filled = self.data.copy()
            for name, field in self.fields.items():
                key = self.add_prefix(name)
                if key in filled or field.initial is None:
                    continue
                if from_browser and isinstance(field, forms.BooleanField):
                    continue  # an unticked box is not sent at all: it means False
                filled[key] = field.initial
            self.data = filled

    def settings(self):
        """The cleaned settings, as stored in Integration.settings (JSON)."""
        return dict(self.cleaned_data)

    def key_taken(self, key):
        """Whether another integration of this tenant, protocol and direction already has this key."""
        integration = self.integration
        return Integration.objects.filter(
            tenant_id=integration.tenant_id, protocol=integration.protocol, direction=integration.direction, key=key,
        ).exclude(pk=integration.pk).exists()


class IntegrationCreateForm(forms.ModelForm):
    """The generic part of a new integration; the protocol's own settings come on their tab."""

    vendor_secret_fields = ()

    class Meta:
        model = Integration
        fields = ["name", "direction", "protocol", "endpoint_url"]
        formfield_callback = https_by_default
        widgets = {"direction": forms.RadioSelect}

    def __init__(self, *args, tenant, **kwargs):
        self.tenant = tenant
        super().__init__(*args, **kwargs)
        self.instance.tenant = tenant
        self.fields["protocol"] = forms.ChoiceField(choices=registry.choices(), initial="data_integration")
        self.fields["endpoint_url"].help_text = "Outbound only: the vendor's URL, e.g. https://acme.example.com/api/v1/data/calls/"


class SettingsForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = ["name", "enabled", "sandbox"]
        labels = {"sandbox": "Sandbox Mode"}
        help_texts = {
            "sandbox": "In Sandbox Mode, values are not shown outside the integration and a bad file "
            "does not halt processing. Unpurged sandbox data counts once Sandbox Mode is off: turning it "
            "off asks you to confirm, and says how much.",
        }


class OutboundSettingsForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = ["name", "enabled", "sandbox", "endpoint_url", "max_attempts"]
        formfield_callback = https_by_default
        labels = {"sandbox": "Sandbox Mode (dry run: nothing is sent)"}
        help_texts = {"sandbox": "Turning it off asks you to confirm: from then on files are sent to the vendor."}


def vault_form(protocol, *, creating):
    """A form with one write-only field per secret the protocol keeps for a vendor."""
    fields = {
        spec.name: VendorCredentialsField(
            label=spec.label if creating else f"Replace {spec.label}", required=creating and spec.required,
            help_text=spec.help_text or ("Stored encrypted, never shown again." if creating
                                         else "Leave blank to keep the stored one. It is never shown back."))
        for spec in protocol.vault_fields
    }
    return type("VaultForm", (forms.Form,), fields)


def vault_values(form):
    """The secrets typed into a vault form, by their names; blank ones are left out."""
    return {name: value for name, value in form.cleaned_data.items() if value}


class MetricForm(forms.ModelForm):
    class Meta:
        model = Metric
        fields = ["name", "source_key", "aggregation"]

    def __init__(self, *args, integration, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.integration = integration
        keys = integration.protocol_spec.metric_source_keys(integration)
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
