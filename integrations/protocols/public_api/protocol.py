"""Reference 001 declared to the registry: its REST endpoints and pages, the import of accounts
and groups (inbound: check and process of a CSV file), the Pull tab (outbound) and the demo."""

from integrations import registry
from uploads.errors import TRANSFORM_DATA, IntakeError, error

from . import api, demo, views
from .directory import check_directory, import_directory, read_directory
from .forms import PullSettingsForm


class PublicApi(registry.Protocol):
    slug = "public_api"
    label = "Public API v3 (accounts, groups, scores)"
    short_label = "Public API v3"
    directions = (registry.INBOUND, registry.OUTBOUND)
    issued = None  # the API takes the tenant's Standard API tokens (API tokens page)
    vault_fields = (registry.VaultField(
        "api_token", "Vendor API token",
        "A Standard API token the vendor issued you, sent as Authorization: Token …. Stored encrypted, never shown "
        "again."),)
    settings_form = PullSettingsForm
    settings_tab = "Pull"
    client_class = None  # outbound it reads a vendor's API (pulls.py); it sends no files
    has_metrics = False
    processed_noun = ("account", "accounts")
    upload_help = ("Inbound: a CSV file of accounts: email, and optionally username, manager, groups, manages. "
                   "An outbound integration of this protocol reads the vendor's API; it sends no files.")

    def api_urlpatterns(self):
        return api.urlpatterns()

    def page_urlpatterns(self):
        return views.urlpatterns

    tenant_pages = [("People and scores", "public_api_accounts",
                     ("public_api_account", "public_api_group", "public_api_import", "public_api_scorecard",
                      "public_api_entry"))]

    def integration_tabs(self, integration):
        if integration.is_inbound:
            return [("Accounts and groups", "public_api_directory")]
        return [("Pulled data", "public_api_pulled")]

    def check(self, integration, file, content_type):
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type not in ("text/csv", "application/vnd.ms-excel", "application/vns.ms-excel", "text/plain"):
            raise IntakeError([error(TRANSFORM_DATA, "An import of accounts and groups is a CSV file (text/csv).")])
        frame = read_directory(file.read())
        check_directory(integration.tenant_id, frame)
        return registry.Checked(records=len(frame), extension="csv", message=f"{len(frame):,} accounts")

    def process(self, upload, file):
        counts = import_directory(upload.tenant_id, read_directory(file.read()))
        return registry.Processed(
            records=counts["accounts"], values_written=counts["accounts"],
            message=f"{counts['accounts']:,} accounts imported ({counts['created']:,} new); "
                    f"{counts['groups_created']:,} new groups.")

    def demo(self, tenant, actor, base_url):
        return [demo.seed(self, tenant, actor, base_url)]
