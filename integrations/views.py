"""Integration pages (Administration > Data > Integrations) and Standard API Token Management.

Thin: parse the form, call a service, render.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_POST

from portal.tenancy import tenant_view
from uploads.purge import purge_integration

from . import outbound, services
from .forms import (
    ApiTokenForm, DataFormatForm, IntegrationCreateForm, MetricForm, OutboundSettingsForm, SettingsForm,
)
from .models import ApiToken, Integration


def _integration(request, pk):
    return get_object_or_404(Integration.objects.filter(tenant=request.tenant), pk=pk)


def _tab(request, integration, tab, **context):
    return render(request, f"integrations/{tab}.html", {"integration": integration, "tab": tab, **context})


@tenant_view()
def integration_list(request):
    integrations = request.tenant.integrations.prefetch_related("metrics").order_by("name")
    return render(request, "integrations/list.html", {"integrations": integrations})


@tenant_view(edit=True)
def integration_create(request):
    form = IntegrationCreateForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in form.Meta.fields if name != "vendor_token"}
        token = form.cleaned_data.get("vendor_token")
        integration = services.create_integration(
            request.tenant, request.user, credentials={"auth_token": token} if token else None, **fields
        )
        messages.success(request, f"Integration “{integration.name}” created, in Sandbox Mode.")
        return redirect(integration)
    return render(request, "integrations/create.html", {"form": form})


@tenant_view()
def integration_settings(request, pk):
    integration = _integration(request, pk)
    form_class = SettingsForm if integration.is_inbound else OutboundSettingsForm
    form = form_class(request.POST or None, instance=integration)
    if request.method == "POST":
        if not request.membership.can_edit:
            return _forbidden(request)
        if form.is_valid():
            changes = {name: form.cleaned_data[name] for name in form.Meta.fields}
            token = form.cleaned_data.get("vendor_token")
            try:
                services.update_integration(
                    _integration(request, pk), request.user, changes,
                    credentials={"auth_token": token} if token else None,
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, "Settings saved.")
                return redirect(integration)
    return _tab(request, integration, "settings", form=form)


@tenant_view()
def integration_data_format(request, pk):
    integration = _integration(request, pk)
    form = DataFormatForm(request.POST or None, instance=integration)
    if request.method == "POST":
        if not request.membership.can_edit:
            return _forbidden(request)
        if form.is_valid():
            changes = {name: form.cleaned_data[name] for name in form.Meta.fields}
            services.update_integration(_integration(request, pk), request.user, changes)
            messages.success(request, "Data Format saved.")
            return redirect("integration_data_format", request.tenant.slug, pk)
    return _tab(request, integration, "data_format", form=form)


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
    context = {"active_token": integration.tokens.active().first(), "endpoint": integration.endpoint(request)}
    return _tab(request, integration, "credentials", **context)


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
    context = {"active_token": integration.tokens.active().first(), "endpoint": integration.endpoint(request),
               "new_token": token}
    response = _tab(request, integration, "credentials", **context)
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


@tenant_view(edit=True)
def integration_purge(request, pk):
    """Purge All Data: a confirmation page, then the purge (Sandbox Mode only)."""
    integration = _integration(request, pk)
    if not integration.sandbox:
        messages.error(request, "Purge All Data is only available in Sandbox Mode.")
        return redirect(integration)
    if request.method == "POST":
        try:
            counts = purge_integration(integration, request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request, f"Purged {counts['values']} metric value{pluralize(counts['values'])} and "
                f"{counts['files']} file{pluralize(counts['files'])} from {counts['uploads']} "
                f"upload{pluralize(counts['uploads'])}.",
            )
        return redirect(integration)
    stats = {"values": integration.metric_values.count(),
             "uploads": integration.uploads.exclude(status="purged").count()}
    return render(request, "integrations/confirm_purge.html", {"integration": integration, "stats": stats})


# --- Outbound: sending from the upload form, and Resend -----------------------------

def send_from_upload_form(request, form):
    """The upload form, for an outbound integration: check the file, then send it (a dry run in
    Sandbox Mode). Called by uploads.views.upload_create once the form is valid."""
    from uploads.errors import IntakeError
    from uploads.intake import content_type_for_file
    from uploads.models import Upload

    integration, file = form.cleaned_data["integration"], form.cleaned_data["file"]
    try:
        upload = outbound.send_upload(
            integration, file, content_type=content_type_for_file(integration, file.name),
            channel=Upload.Channel.WEB, submitted_by=request.user, submitted_via=request.user.get_username(),
            filename=file.name,
        )
    except IntakeError as problem:
        return render(request, "uploads/form.html", {"form": form, "errors": problem.errors}, status=problem.status)
    except ValidationError as exc:
        form.add_error(None, exc)
        return render(request, "uploads/form.html", {"form": form}, status=400)
    if upload.status == Upload.Status.DRY_RUN:
        messages.success(request, "Sandbox Mode: the file was checked and the request it would make is logged "
                                  "below. Nothing was sent.")
    else:
        messages.success(request, f"The file is being sent to {integration.name}.")
    return redirect(upload)


@tenant_view(edit=True)
@require_POST
def upload_resend(request, pk):
    from uploads.models import Upload

    upload = get_object_or_404(Upload.objects.filter(tenant=request.tenant), pk=pk)
    try:
        upload = outbound.resend_upload(upload, request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Dry run logged again (Sandbox Mode)." if upload.status == Upload.Status.DRY_RUN
                         else "Resending: a new series of attempts has started.")
    return redirect(upload)


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
