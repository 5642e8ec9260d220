"""Integration pages (Administration > Data > Integrations) and Standard API Token Management.

Thin: parse the form, call a service, render.
"""

import csv
import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from portal.tenancy import tenant_view

from . import services
from . import registry
from .forms import (
    ApiTokenForm, IntegrationCreateForm, MetricForm, OutboundSettingsForm, SettingsForm, vault_form, vault_values,
    written_date,
)
from .models import ApiToken, Integration


def _integration(request, pk):
    return get_object_or_404(Integration.objects.filter(tenant=request.tenant), pk=pk)


def _tab(request, integration, tab, **context):
    return render(request, f"integrations/{tab}.html", {"integration": integration, "tab": tab,
                                                         "protocol": integration.protocol_spec, **context})


@tenant_view()
def integration_list(request):
    integrations = request.tenant.integrations.prefetch_related("metrics").order_by("name")
    return render(request, "integrations/list.html", {"integrations": integrations})


def _protocol_forms(data, tenant, direction=None, protocol=None):
    """For each protocol: its settings form and the vault form of its vendor secrets, prefixed by its slug."""
    forms = []
    for spec in registry.all_protocols():
        unsaved = Integration(tenant=tenant, protocol=spec.slug, direction=direction or "inbound")
        chosen = data is not None and spec.slug == protocol
        # No `required` attributes: the browser would refuse to submit because of a field in a
        # fieldset it hides (another protocol's, or the vendor's for an inbound integration).
        # The server checks the chosen protocol's fields.
        settings_form = (spec.settings_form(data if chosen else None, integration=unsaved, prefix=spec.slug,
                                            use_required_attribute=False) if spec.settings_form else None)
        vault = vault_form(spec, creating=True)(data if chosen else None, prefix=f"vault-{spec.slug}",
                                                use_required_attribute=False)
        forms.append({"protocol": spec, "settings": settings_form, "vault": vault})
    return forms


@tenant_view(edit=True)
def integration_create(request):
    form = IntegrationCreateForm(request.POST or None, tenant=request.tenant)
    data = request.POST if request.method == "POST" else None
    chosen = form.data.get("protocol") if data else None
    direction = form.data.get("direction") if data else None
    protocol_forms = _protocol_forms(data, request.tenant, direction, chosen)
    if request.method == "POST" and form.is_valid():
        mine = next(item for item in protocol_forms if item["protocol"].slug == form.cleaned_data["protocol"])
        outbound = form.cleaned_data["direction"] == "outbound"
        valid = mine["settings"] is None or mine["settings"].is_valid()
        valid = (not outbound or mine["vault"].is_valid()) and valid
        if valid:
            fields = {name: form.cleaned_data[name] for name in form.Meta.fields}
            settings = mine["settings"].settings() if mine["settings"] else {}
            credentials = vault_values(mine["vault"]) if outbound else None
            try:
                integration = services.create_integration(request.tenant, request.user, settings=settings,
                                                          credentials=credentials, **fields)
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"Integration “{integration.name}” created, in Sandbox Mode.")
                # Its overview says what is left to do: the setup checklist.
                return redirect("integration_overview", request.tenant.slug, integration.pk)
    return render(request, "integrations/create.html", {"form": form, "protocol_forms": protocol_forms})


def _add_errors(form, exc):
    """A service's ValidationError on the form: on its field where the form has one."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


@tenant_view()
def integration_settings(request, pk):
    integration = _integration(request, pk)
    in_sandbox = integration.sandbox  # before the form, which writes what it cleans onto the instance
    form_class = SettingsForm if integration.is_inbound else OutboundSettingsForm
    form = form_class(request.POST or None, instance=integration)
    vault = None if integration.is_inbound else vault_form(integration.protocol_spec, creating=False)(
        request.POST or None, prefix="vault")
    if request.method == "POST":
        if not request.membership.can_edit:
            return _forbidden(request)
        if form.is_valid() and (vault is None or vault.is_valid()):
            changes = {name: form.cleaned_data[name] for name in form.Meta.fields}
            # Sandbox Mode off is confirmed on a page of its own, which says what starts counting.
            leaving_sandbox = in_sandbox and not changes["sandbox"]
            if leaving_sandbox:
                del changes["sandbox"]
            try:
                services.update_integration(_integration(request, pk), request.user, changes,
                                            credentials=vault_values(vault) if vault else None)
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                if not leaving_sandbox:
                    messages.success(request, "Settings saved.")
                    return redirect(integration)
                if set(form.changed_data) - {"sandbox"} or (vault is not None and vault_values(vault)):
                    messages.success(request, "Your other changes are saved.")
                return redirect("integration_sandbox_off", request.tenant.slug, pk)
    return _tab(request, integration, "settings", form=form, vault=vault)


@tenant_view()
def integration_protocol_settings(request, pk):
    """The protocol's own settings (seed 000: the Data Format)."""
    integration = _integration(request, pk)
    spec = integration.protocol_spec
    if spec.settings_form is None:
        return redirect(integration)
    data = request.POST if request.method == "POST" else None
    form = spec.settings_form(data, integration=integration, initial=spec.settings_of(integration))
    if request.method == "POST":
        if not request.membership.can_edit:
            return _forbidden(request)
        if form.is_valid():
            try:
                services.update_integration(integration, request.user, {"settings": form.settings()})
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"{spec.settings_tab} saved.")
                return redirect("integration_protocol_settings", request.tenant.slug, pk)
    return _tab(request, integration, "protocol_settings", form=form)


@tenant_view()
def integration_metrics(request, pk):
    integration = _integration(request, pk)
    form = MetricForm(request.POST or None, integration=integration)
    if request.method == "POST":
        if not request.membership.can_edit:
            return _forbidden(request)
        if form.is_valid():
            metric = services.add_metric(integration, request.user, **form.cleaned_data)
            messages.success(request, f"Metric “{metric.name}” added.")
            return redirect("integration_metrics", request.tenant.slug, pk)
    return _tab(request, integration, "metrics", form=form, metrics=integration.metrics.all())


@tenant_view(edit=True)
@require_POST
def metric_delete(request, pk, metric_pk):
    integration = _integration(request, pk)
    metric = get_object_or_404(integration.metrics, pk=metric_pk)
    services.delete_metric(metric, request.user)
    messages.success(request, f"Metric “{metric.name}” deleted, with its values.")
    return redirect("integration_metrics", request.tenant.slug, pk)


@tenant_view()
def integration_credentials(request, pk):
    integration = _integration(request, pk)
    return _tab(request, integration, "credentials", **_credentials(request, integration))


def _credentials(request, integration):
    issued = integration.protocol_spec.issued
    tokens = integration.tokens.active()
    records = sample_records(integration, 1)
    return {"active_token": tokens.filter(kind=issued.kind).first() if issued else None,
            "issued": issued, "endpoint": integration.endpoint(request),
            "sample_body": json.dumps(records) if records else "", "sample_name": sample_name(integration)}


# --- A sample file, from the integration's own field keys --------------------------------------

SAMPLE_USERS = ["jason@yourcompany.com", "maria@yourcompany.com", "li@yourcompany.com"]
SAMPLE_NUMBERS = ["3", "5", "2"]


def sample_records(integration, count=3):
    """Records a client could send to this integration: every field key, the user key naming a
    user, the date key today's date in the integration's date format, every other key a number (as
    text, as the seed's own example has it: any of them may become a metric's source). [] when the
    protocol has no field keys."""
    spec = integration.protocol_spec
    settings = spec.settings_of(integration)
    keys = list(settings.get("field_keys") or [])
    if not keys:
        return []
    user_key, date_key = settings.get("user_key"), settings.get("date_key")
    numbers = set(spec.metric_source_keys(integration)) if spec.has_metrics else set()
    today = written_date(timezone.localdate(), settings.get("date_format") or "YYYY-MM-DD")
    records = []
    for n in range(count):
        user = SAMPLE_USERS[n % len(SAMPLE_USERS)]
        records.append({key: (user if "email" in key.lower() else user.split("@")[0]) if key == user_key
                        else today if key == date_key
                        else SAMPLE_NUMBERS[n % len(SAMPLE_NUMBERS)] if key in numbers
                        else "example" for key in keys})
    return records


def sample_name(integration):
    data_format = integration.protocol_spec.settings_of(integration).get("data_format") or "csv"
    return f"{integration.key or 'sample'}-sample.{data_format}"


@tenant_view()
def integration_sample(request, pk):
    """A small file in the integration's Data Format, to send as a first test."""
    integration = _integration(request, pk)
    records = sample_records(integration)
    if not records:
        raise Http404("This integration's protocol has no field keys to make a sample of.")
    name = sample_name(integration)
    if name.endswith(".json"):
        response = HttpResponse(json.dumps(records, indent=2) + "\n", content_type="application/json")
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        writer = csv.DictWriter(response, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@tenant_view(edit=True)
@require_POST
def integration_token_regenerate(request, pk):
    """Issue a new AUTH_TOKEN and show it, once, in this response (it is never stored)."""
    integration = _integration(request, pk)
    try:
        token = services.regenerate_integration_token(integration, request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("integration_credentials", request.tenant.slug, pk)
    response = _tab(request, integration, "credentials", **_credentials(request, integration), new_token=token)
    response["Cache-Control"] = "no-store"
    return response


@tenant_view(edit=True)
def integration_delete(request, pk):
    integration = _integration(request, pk)
    if request.method == "POST":
        services.delete_integration(integration, request.user)
        messages.success(request, f"Integration “{integration.name}” deleted.")
        return redirect("integration_list", request.tenant.slug)
    return render(request, "integrations/confirm_delete.html", {"integration": integration})


# --- Standard API Token Management (seed 001) ---------------------------------------

@tenant_view()
def token_list(request):
    tokens = ApiToken.objects.filter(tenant=request.tenant, kind=ApiToken.Kind.STANDARD).select_related("created_by")
    return render(request, "integrations/tokens.html", {"tokens": tokens})


@tenant_view(edit=True)
def token_create(request):
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        row, token = services.issue_api_token(
            request.tenant, request.user, form.cleaned_data["name"], form.cleaned_data["scope"]
        )
        response = render(request, "integrations/token_created.html", {"token_row": row, "token": token})
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "integrations/token_form.html", {"form": form})


@tenant_view(edit=True)
@require_POST
def token_revoke(request, token_pk):
    token = get_object_or_404(ApiToken.objects.filter(tenant=request.tenant), pk=token_pk)
    services.revoke_api_token(token, request.user)
    messages.success(request, f"Token “{token.name}” revoked. Anything using it is now refused.")
    return redirect("token_list", request.tenant.slug)


def _forbidden(request):
    response = render(request, "403.html", {"reason": "You need the “Integrations: Edit” permission to change this."},
                      status=403)
    return response
