from django import forms

from integrations.models import Direction, Integration

DATA_INTEGRATION = "data_integration"


def data_integrations(tenant):
    """The tenant's inbound data integrations (reference 000): what a token's files may be processed into."""
    return Integration.objects.filter(tenant=tenant, protocol=DATA_INTEGRATION, direction=Direction.INBOUND) \
        .order_by("name")


class ProcessIntoField(forms.ModelChoiceField):
    def __init__(self, tenant, **kwargs):
        super().__init__(
            queryset=data_integrations(tenant), required=False, empty_label="None: keep the files for the team",
            label="Process CSV and JSON files into",
            help_text="A data integration: its files are checked and turned into its values as its own uploads are, "
                      "whatever their size.", **kwargs)

    def label_from_instance(self, integration):
        data_format = (integration.settings or {}).get("data_format", "")
        return f"{integration.name} ({integration.key}, {data_format.upper()})" if data_format else integration.name


class TokenForm(forms.Form):
    """New API Token (reference 003): a description, and optionally where its files are processed."""

    name = forms.CharField(max_length=100, label="Description",
                           help_text="What will send files with it, e.g. “nightly CRM export”.")

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["process_into"] = ProcessIntoField(tenant)


class TokenLinkForm(forms.Form):
    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["process_into"] = ProcessIntoField(tenant)
