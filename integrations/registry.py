"""The protocol contract and the registry of the protocols the portal speaks.

A protocol (one of the reference documents in shared/seeds) is one package under
integrations/protocols/, installed as a Django app whose AppConfig names its `Protocol`
subclass (`protocol = "dotted.path.To.Class"`). Adding a protocol is one line in
settings.PROTOCOL_APPS. Everything outside a protocol's package (pages, forms, the REST
API, the admin, the intake, the delivery engine, the demo) asks this registry what a
protocol needs instead of naming it.

The contract, in one place per protocol:

- `slug`, `label`, `directions`: what it is and which ways it works;
- `issued` (inbound): the credential the portal issues for it (kind, header, label);
- `vault_fields` (outbound): the secrets it keeps for a vendor, encrypted at rest;
- `settings_form`: a Django form for its own settings (stored in Integration.settings, and
  the integration's `key`, the name its endpoint knows it by, when it has one);
- `urlpatterns()`: its routes and inbound views, mounted under /api/;
- `check()` / `process()` / `purge()`: what becomes of a submission (inbound);
- `client_class`: its outbound client, driven by the delivery engine (uploads.delivery);
- `audit_actions`: the actions it records in the audit trail of its own, with their labels;
- templates `protocols/<slug>/credentials.html` (and optionally `settings_help.html`).
"""

from dataclasses import dataclass, field
from functools import cache

from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from portal import audit

INBOUND, OUTBOUND = "inbound", "outbound"


@dataclass(frozen=True)
class IssuedCredential:
    """A secret the portal issues for an inbound integration: hashed, shown once, rotatable."""

    kind: str  # stored on the IntegrationToken row
    label: str  # what the Credentials tab calls it, e.g. "AUTH_TOKEN", "API key"
    how_sent: str  # e.g. "Authorization: Token AUTH_TOKEN", "X-API-KEY: <key>"


@dataclass(frozen=True)
class VaultField:
    """A secret kept for a vendor (outbound): encrypted at rest, write-only, never shown back."""

    name: str
    label: str
    help_text: str = ""
    required: bool = True


@dataclass
class Checked:
    """What a protocol's check found in an accepted submission."""

    records: int
    extension: str = ""  # of the stored file: "json", "csv"
    message: str = ""
    details: dict = field(default_factory=dict)
    # What the check made of the file, in the protocol's own format, for its processing to read
    # instead of the file (the intake stores it as the upload's `prepared` file; inbound only).
    prepared: bytes | None = None


@dataclass
class Processed:
    """What processing an accepted submission produced (stored on the upload)."""

    records: int
    values_written: int = 0
    message: str = ""


class Protocol:
    """Subclass in a protocol's package; see the module docstring for what each part is."""

    slug = ""
    label = ""
    short_label = ""  # for badges and tables
    directions = (INBOUND, OUTBOUND)
    issued: IssuedCredential | None = None
    vault_fields: tuple = ()
    settings_form = None  # a django.forms.Form class, or None when the protocol has no settings of its own
    settings_tab = "Settings"  # what the integration page calls the tab of those settings
    key_field = ""  # the settings field stored as Integration.key (unique per tenant, protocol, direction)
    key_label = ""
    client_class = None  # outbound client (a uploads.delivery.client.OutboundClient subclass)
    max_upload_bytes = 15 * 1024 * 1024
    has_metrics = False  # whether metrics (and their values) make sense for its inbound integrations
    processed_noun = ("row", "rows")  # what purge deletes, singular and plural
    audit_actions = ()  # (action, label) pairs of the actions it records itself
    upload_help = "CSV or JSON."

    def __str__(self):
        return self.label

    # --- settings ------------------------------------------------------------------------
    def settings_of(self, integration):
        """The integration's protocol settings as the settings form reads them (with its key)."""
        values = dict(integration.settings or {})
        if self.key_field:
            values[self.key_field] = integration.key
        return values

    def clean_settings(self, integration, data, partial=False):
        """Validate settings with the protocol's form: (settings dict, key). Raises ValidationError."""
        if self.settings_form is None:
            return {}, ""
        current = self.settings_of(integration) if integration.pk or partial else {}
        form = self.settings_form(data={**current, **data} if partial else data, integration=integration)
        if not form.is_valid():
            raise ValidationError(form.errors.get_json_data() and {
                name: [e["message"] for e in errors] for name, errors in form.errors.get_json_data().items()})
        cleaned = form.settings()
        key = cleaned.pop(self.key_field, "") if self.key_field else ""
        return cleaned, key

    # --- routes ----------------------------------------------------------------------------
    def urlpatterns(self):
        """Machine endpoints, mounted under /api/ (e.g. seed 000's v1/data/<data_type>/)."""
        return []

    def api_urlpatterns(self):
        """Endpoints of the public REST API, mounted under /api/v3/ (in the OpenAPI schema)."""
        return []

    def page_urlpatterns(self):
        """Pages of a tenant, mounted under /t/<slug>/ (views decorated with portal.tenancy.tenant_view)."""
        return []

    def integration_tabs(self, integration):
        """Extra tabs on an integration's pages: [(label, url name)], the URL taking (slug, pk)."""
        return []

    # Pages of the tenant's own linked from the main navigation: [(label, url name, the url-name
    # prefixes of the pages it stands for)], the URL taking the tenant's slug.
    tenant_pages = ()

    # --- inbound ---------------------------------------------------------------------------

    def endpoint_path(self, integration):
        """Where its systems send to (absolute path), or "" when it has no endpoint of its own."""
        return ""

    def check(self, integration, file, content_type) -> Checked:
        """Check a submission (a file opened for reading, at most max_upload_bytes) before it is
        stored; raise uploads.errors.IntakeError to refuse it. For an outbound integration, check
        what would be sent."""
        raise NotImplementedError

    def process(self, upload, file) -> Processed:
        """Turn a stored inbound submission into data, inside the caller's transaction, holding
        the integration's row lock. Raise IntakeError for a file that cannot be processed.
        `upload.prepared`, when set, holds what the check made of the file (Checked.prepared)."""
        raise NotImplementedError

    def purge(self, integration) -> int:
        """Delete what processing produced for this integration; returns how many rows went."""
        return 0

    def processed_count(self, integration) -> int:
        """How many processed rows Purge All Data would delete."""
        return 0

    def metric_source_keys(self, integration):
        """The field keys a metric may read (protocols with has_metrics)."""
        return []

    def client(self, integration, credentials):
        if self.client_class is None:
            raise ValidationError(f"The portal cannot send with the {self.label} protocol.")
        return self.client_class(integration, credentials)

    def demo(self, tenant, actor, base_url):
        """Create (or refresh) what the demo tenant gets of this protocol: a list of dicts for
        `manage.py demo --json`, each with name, protocol, direction and what a client needs."""
        return []

    @property
    def credentials_template(self):
        return f"protocols/{self.slug}/credentials.html"

    @property
    def settings_intro_template(self):
        """Shown above the settings form; a protocol without one sets this to None."""
        return f"protocols/{self.slug}/settings_intro.html"


@cache
def _protocols():
    found = {}
    for config in apps.get_app_configs():
        path = getattr(config, "protocol", None)
        if path:
            protocol = import_string(path)()
            found[protocol.slug] = protocol
            for action, label in protocol.audit_actions:
                audit.register_action(action, label)
    return found


def all_protocols():
    return list(_protocols().values())


def get(slug) -> Protocol:
    try:
        return _protocols()[slug]
    except KeyError:
        raise ValidationError(f"Unknown protocol “{slug}”.") from None


def choices(direction=None):
    return [(p.slug, p.label) for p in _protocols().values() if direction is None or direction in p.directions]


def label(slug):
    protocol = _protocols().get(slug)
    return protocol.label if protocol else slug


def urlpatterns():
    return [pattern for protocol in _protocols().values() for pattern in protocol.urlpatterns()]


def api_urlpatterns():
    return [pattern for protocol in _protocols().values() for pattern in protocol.api_urlpatterns()]


def page_urlpatterns():
    return [pattern for protocol in _protocols().values() for pattern in protocol.page_urlpatterns()]


def tenant_pages():
    return [page for protocol in _protocols().values() for page in protocol.tenant_pages]
