from django import forms

from integrations.models import Integration


class UploadForm(forms.Form):
    integration = forms.ModelChoiceField(queryset=Integration.objects.none(), empty_label="Choose an integration")
    file = forms.FileField(help_text="CSV or JSON, as the integration's Data Format says; 15 MB at most.")

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["integration"].queryset = Integration.objects.filter(tenant=tenant, enabled=True).order_by("name")
