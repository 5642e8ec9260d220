"""Reference 002 declared to the registry: its settings (the Upload API tab), credentials, routes,
REST endpoints, pages, check, processing, purge, outbound client and demo."""

from django import forms
from django.urls import path, reverse

from integrations import destinations, registry, services
from integrations.forms import ProtocolSettingsForm
from integrations.models import Integration
from uploads.errors import IntakeError

from . import api, datasets, pages, submissions
from .client import DEFAULT_NAME, UploadApiVendorClient
from .credentials import API_KEY, PROTOCOL, issue_client_secret
from .document import Submitted, read_stored
from .inbound import GetResultsView, UploadApiTokenView, UploadDataView
from .models import Dataset

INBOUND_FIELDS = ("unknown_email",)
OUTBOUND_FIELDS = ("token_url", "submission_name")
DEMO = {"name": "Timesheets (Upload API)"}
DEMO_DATA = ("Reference,StartDate,StartTime,EndDate,EndTime\r\n"
             "jason@yourcompany.com,12/05/2024,09:00,12/05/2024,17:00\r\n"
             "ann@yourcompany.com,12/05/2024,08:30,12/05/2024,16:30\r\n"
             "User1,13/05/2024,09:00,13/05/2024,12:00")
DEMO_EVENTS = ("Reference,EventStartDate,EventStartTime,EventEndDate,EventEndTime,Description,TimeReference\r\n"
               "jason@yourcompany.com,12/05/2024,09:05,12/05/2024,09:30,Meeting,0")


class UploadApiForm(ProtocolSettingsForm):
    """The Upload API tab. Inbound: what becomes of a Reference that is an unknown email.
    Outbound: the vendor's token URL and the Name each upload is submitted under (the vendor
    endpoint on the Settings tab is the API's base URL: …/UploadData and …/GetResults)."""

    unknown_email = forms.ChoiceField(
        choices=[("create", "Create the account"), ("reject", "Refuse the row (feedback)")], initial="create",
        label="A Reference that is an email no account has",
        help_text="A Reference with “@” is the email of an account of this organisation; any other Reference "
                  "(a user id, a name) is kept on its record as it was sent.",
    )
    token_url = forms.URLField(
        max_length=500, required=False, assume_scheme="https", label="Token URL",
        help_text="The vendor's OAuth 2.0 token endpoint (client credentials, scope platform_upload_api).",
    )
    submission_name = forms.CharField(
        max_length=200, required=False, initial=DEFAULT_NAME, label="Name of each submission",
        help_text="{integration} and {upload} become their numbers, so that an upload keeps its Name through "
                  "retries and resends (sent with Overwrite true). Without {upload}, every upload replaces the "
                  "same submission.",
    )

    def __init__(self, data=None, *args, integration, **kwargs):
        super().__init__(data, *args, integration=integration, **kwargs)
        if self.is_bound or integration.pk:  # the create page shows both until a direction is chosen
            for name in OUTBOUND_FIELDS if integration.is_inbound else INBOUND_FIELDS:
                del self.fields[name]
        if "token_url" in self.fields and self.is_bound:
            self.fields["token_url"].required = True

    def clean_token_url(self):
        url = self.cleaned_data["token_url"]
        if url:
            try:
                destinations.check_url(url)
            except destinations.RefusedDestination as exc:
                raise forms.ValidationError(str(exc)) from None
        return url

    def clean_submission_name(self):
        template = self.cleaned_data["submission_name"] or DEFAULT_NAME
        try:
            name = template.format(integration=1, upload=1)
        except (KeyError, IndexError, ValueError):
            raise forms.ValidationError("Only {integration} and {upload} may be written in braces.") from None
        if not name.strip():
            raise forms.ValidationError("The Name must not be blank.")
        return template


class UploadApi(registry.Protocol):
    slug = PROTOCOL
    label = "Upload API (OAuth2, UploadData / GetResults)"
    short_label = "Upload API"
    issued = API_KEY
    vault_fields = (
        registry.VaultField("client_id", "Vendor client id", "The OAuth 2.0 client id the vendor issued you."),
        registry.VaultField("client_secret", "Vendor client secret",
                            "The client secret the vendor issued you. Stored encrypted, never shown again."),
        registry.VaultField("api_key", "Vendor API key",
                            "The API key (the “Key” of each request) the vendor issued you. Stored encrypted, never "
                            "shown again."),
    )
    settings_form = UploadApiForm
    settings_tab = "Upload API"
    client_class = UploadApiVendorClient
    has_metrics = False
    processed_noun = ("record", "records")
    upload_help = ("Inbound: an UploadData body without Key (JSON: Name, Data, EventData, Overwrite). Outbound: a CSV "
                   "file of the Data columns Reference, StartDate, StartTime, EndDate, EndTime (header row optional). "
                   "15 MB at most.")

    def urlpatterns(self):
        # The seed's names, as it writes them; a trailing slash is the same endpoint, not a redirect.
        routes = [("token", UploadApiTokenView, "upload_api_token"),
                  ("UploadData", UploadDataView, "upload_api_upload_data"),
                  ("GetResults", GetResultsView, "upload_api_get_results")]
        return [pattern for route, view, name in routes for pattern in (
            path(f"upload-api/{route}", view.as_view(), name=name),
            path(f"upload-api/{route}/", view.as_view(), name=f"{name}_slash"))]

    def api_urlpatterns(self):
        return api.urlpatterns

    def page_urlpatterns(self):
        return pages.urlpatterns

    def integration_tabs(self, integration):
        return [("Records", "upload_api_records")] if integration.is_inbound else []

    def endpoint_path(self, integration):
        return reverse("upload_api_upload_data")

    def check(self, integration, file, content_type):
        data = file.read()
        if integration.is_inbound:
            submitted = read_stored(data)
            rows = _count_rows(submitted.data) + _count_rows(submitted.event_data)
            return registry.Checked(records=rows, extension="json", message=f"“{submitted.name}”")
        feedback = datasets.Feedback()
        rows = datasets.read(datasets.DATA, datasets.decode(data), feedback)
        if rows is None:
            raise feedback_refusal(feedback)
        return registry.Checked(records=len(rows), extension="csv", message=f"{len(rows):,} Data rows")

    def process(self, upload, file):
        unknown_email = (upload.integration.settings or {}).get("unknown_email", "create")
        return submissions.process(upload, file, unknown_email)

    def purge(self, integration):
        return submissions.purge(integration)

    def processed_count(self, integration):
        return submissions.record_count(integration)

    def demo(self, tenant, actor, base_url):
        integration = Integration.objects.filter(tenant=tenant, protocol=self.slug, direction=registry.INBOUND).first()
        if integration is None:
            integration = services.create_integration(tenant, actor, protocol=self.slug, **DEMO)
        client_id, client_secret = issue_client_secret(integration, actor)
        key = services.regenerate_integration_token(integration, actor)
        if not Dataset.objects.filter(integration=integration).exists():
            submission = submissions.submit(integration, Submitted("Demo timesheet", DEMO_DATA, DEMO_EVENTS, False),
                                            actor)
            submissions.process_now(submission)
        urls = {name: base_url + reverse(f"upload_api_{name}")
                for name in ("token", "upload_data", "get_results")}
        return [{"name": integration.name, "protocol": self.slug, "direction": registry.INBOUND,
                 "endpoint": urls["upload_data"], "token_url": urls["token"], "upload_data_url": urls["upload_data"],
                 "get_results_url": urls["get_results"], "client_id": client_id, "client_secret": client_secret,
                 "key": key}]


def feedback_refusal(feedback):
    """A file to be sent that the vendor would refuse, refused here: each problem at its row and column."""
    return IntakeError(feedback.errors(qualified=False), total=feedback.total)


def _count_rows(text):
    """Rows of a CSV dataset, roughly (lines with something on them, a header row not counted):
    what the upload shows while it waits; processing counts them exactly."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) - (1 if lines and lines[0].lstrip().lower().startswith("reference") else 0)
