"""The forms of reference 001's pages: an account, a group, a scorecard entry, a pull; and the
outbound integration's settings (the Pull tab)."""

from django import forms
from django.core.exceptions import ValidationError

from integrations.forms import ProtocolSettingsForm
from integrations.models import Direction, Metric
from uploads.models import Account, Group

from .models import Period, ScorecardEntry

SCHEDULES = [("off", "Only when asked (the Pulled data tab)"), ("1", "Every hour"), ("6", "Every 6 hours"),
             ("24", "Every day")]
DEFAULT_PAGE_SIZE = 1000


class AccountForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = ["email", "username", "manager", "groups"]
        widgets = {"groups": forms.CheckboxSelectMultiple}
        help_texts = {"email": "What data files name this person by (lower-cased)."}

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.tenant = tenant
        others = Account.objects.filter(tenant=tenant).order_by("username")
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        self.fields["manager"].queryset = others
        self.fields["manager"].label_from_instance = lambda a: f"{a.username} ({a.email})"
        self.fields["groups"].queryset = Group.objects.filter(tenant=tenant).order_by("name")
        self.fields["email"].widget = forms.EmailInput()

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        taken = Account.objects.filter(tenant=self.instance.tenant, email=email).exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError("Another account of this tenant has this email.")
        return email

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        if username and Account.objects.filter(tenant=self.instance.tenant, username__iexact=username) \
                .exclude(pk=self.instance.pk).exists():
            raise ValidationError("Another account of this tenant has this username.")
        return username


class GroupForm(forms.ModelForm):
    members = forms.ModelMultipleChoiceField(queryset=Account.objects.none(), required=False,
                                             widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Group
        fields = ["name", "members", "managers"]
        widgets = {"managers": forms.CheckboxSelectMultiple}

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.tenant = tenant
        accounts = Account.objects.filter(tenant=tenant).order_by("username")
        for name in ("members", "managers"):
            self.fields[name].queryset = accounts
            self.fields[name].label_from_instance = lambda a: a.username
        if self.instance.pk:
            self.initial["members"] = list(self.instance.accounts.values_list("pk", flat=True))

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if Group.objects.filter(tenant=self.instance.tenant, name=name).exclude(pk=self.instance.pk).exists():
            raise ValidationError("Another group of this tenant has this name.")
        return name

    def _save_m2m(self):
        super()._save_m2m()
        self.instance.accounts.set(self.cleaned_data["members"])


class ScorecardEntryForm(forms.ModelForm):
    class Meta:
        model = ScorecardEntry
        fields = ["metric", "kind", "weight", "goal_day", "goal_week", "goal_month"]

    def __init__(self, *args, scorecard, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.scorecard = scorecard
        self.fields["metric"].queryset = (Metric.objects.filter(integration__tenant_id=scorecard.tenant_id,
                                                                integration__direction=Direction.INBOUND)
                                          .select_related("integration").order_by("integration__name", "name"))
        self.fields["metric"].label_from_instance = lambda m: f"{m.name} ({m.integration.name})"

    def clean(self):
        data = super().clean()
        metric, kind = data.get("metric"), data.get("kind")
        if metric and kind and ScorecardEntry.objects.filter(scorecard=self.instance.scorecard, metric=metric,
                                                             kind=kind).exclude(pk=self.instance.pk).exists():
            raise ValidationError("This metric is on the scorecard for this score already.")
        return data


class ScorePeriodForm(forms.Form):
    """Which scores the scorecard page shows."""

    period = forms.ChoiceField(choices=Period.choices, initial=Period.MONTH)
    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                           help_text="A day in the period (default: today)")


class PullForm(forms.Form):
    period = forms.ChoiceField(choices=Period.choices, initial=Period.DAY)
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="A day in the period")


class PullSettingsForm(ProtocolSettingsForm):
    """The Pull tab of an outbound integration: what is read on schedule, and how."""

    period = forms.ChoiceField(choices=Period.choices, initial=Period.DAY, label="Period of the scores pulled",
                               help_text="On schedule, the period that holds yesterday is pulled: a day's scores "
                                         "are final then, a week's or a month's are to date.")
    schedule = forms.ChoiceField(choices=SCHEDULES, initial="24", label="Pull",
                                 help_text="Scheduled pulls run only out of Sandbox Mode.")
    page_size = forms.IntegerField(min_value=1, max_value=10_000, initial=DEFAULT_PAGE_SIZE,
                                   label="Records per request",
                                   help_text="The vendor's limit per score API is 30 calls a minute and 1000 a day: "
                                             "large pages need fewer calls.")

    def __init__(self, data=None, *args, integration, **kwargs):
        super().__init__(data, *args, integration=integration, **kwargs)
        if integration.is_inbound:
            for name in list(self.fields):
                del self.fields[name]  # an import integration has nothing to set: its files say it all
