from django import forms

from integrations import registry
from integrations.models import Integration

from .models import Upload


class UploadForm(forms.Form):
    integration = forms.ModelChoiceField(queryset=Integration.objects.none(), empty_label="Choose an integration")
    file = forms.FileField(help_text="CSV or JSON, as the integration's Data Format says; 15 MB at most.")

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["integration"].queryset = Integration.objects.filter(tenant=tenant, enabled=True).order_by("name")


class DateInput(forms.DateInput):
    input_type = "date"


class HistoryFilter(forms.Form):
    """The filters above the history's lists; each is optional, and a bad value is ignored."""

    integration = forms.ModelChoiceField(queryset=Integration.objects.none(), required=False,
                                         empty_label="All integrations")
    status = forms.ChoiceField(required=False)
    channel = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, label="From", widget=DateInput)
    until = forms.DateField(required=False, label="To", widget=DateInput)

    def __init__(self, data, *, tenant, statuses, channels):
        super().__init__(data, label_suffix="")
        self.fields["integration"].queryset = Integration.objects.filter(tenant=tenant).order_by("name")
        self.fields["status"].choices = [("", "Any status"), *statuses]
        self.fields["channel"].choices = [("", "Any channel"), *channels]

    def value(self, name):
        """A filter's value, or None when it is left empty or is not valid (a bad value is ignored,
        the others still apply)."""
        if not self.is_bound:
            return None
        self.is_valid()  # checks once; cleaned_data keeps the fields that passed
        return self.cleaned_data.get(name)

    def filter(self, rows, time_field="created_at"):
        """The rows that pass the filters of integration and dates."""
        if self.value("integration"):
            rows = rows.filter(integration=self.value("integration"))
        if self.value("since"):
            rows = rows.filter(**{f"{time_field}__date__gte": self.value("since")})
        if self.value("until"):
            rows = rows.filter(**{f"{time_field}__date__lte": self.value("until")})
        return rows

    @property
    def active(self):
        return any(self.value(name) for name in self.fields)


UPLOAD_STATUSES = Upload.Status.choices
UPLOAD_CHANNELS = Upload.Channel.choices
# What came of a request, for the request log's status filter.
OUTCOMES = [("accepted", "Accepted (2xx)"), ("refused", "Refused (4xx)"), ("error", "Portal error (5xx)")]


def request_channels():
    """The request log's channels: the web form, the REST API, and each protocol's endpoint."""
    return [("web", "Web form"), ("rest", "REST API (/api/v3/)"),
            *[(f"endpoint:{p.slug}", f"{p.short_label or p.label} endpoint") for p in registry.all_protocols()]]


class ValuesFilter(forms.Form):
    """Browsing an integration's metric values."""

    metric = forms.ModelChoiceField(queryset=None, required=False, empty_label="All metrics")
    account = forms.CharField(required=False, label="User", max_length=254,
                              widget=forms.TextInput(attrs={"placeholder": "email contains…", "type": "search"}))
    since = forms.DateField(required=False, label="From", widget=DateInput)
    until = forms.DateField(required=False, label="To", widget=DateInput)

    def __init__(self, data, *, integration):
        super().__init__(data, label_suffix="")
        self.fields["metric"].queryset = integration.metrics.all()

    def filter(self, values):
        self.is_valid()  # a bad value is ignored; cleaned_data keeps the valid ones
        data = getattr(self, "cleaned_data", {})
        if data.get("metric"):
            values = values.filter(metric=data["metric"])
        if data.get("account"):
            values = values.filter(account__email__icontains=data["account"].strip())
        if data.get("since"):
            values = values.filter(date__gte=data["since"])
        if data.get("until"):
            values = values.filter(date__lte=data["until"])
        return values
