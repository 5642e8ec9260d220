"""Reference 003's pages: the API Tokens tile (File Upload API tokens: new, revoke, where their
files are processed) and the File Upload API integration's "Files received" tab (the
notifications; a received file is downloaded from its upload's page, uploads.views). Thin: a form
checks, a plain function works, a page shows."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from integrations import services
from integrations.models import ApiToken, Integration
from portal.tenancy import tenant_view

from . import tokens
from .forms import TokenForm, TokenLinkForm
from .models import Notification
from .slots import SLUG, file_upload_tokens


def _steps(request):
    """What the page shows for the two steps: the URL of step 1."""
    return {"request_url": request.build_absolute_uri(reverse("file_upload_request"))}


def _files_integration(tenant):
    return Integration.objects.filter(tenant=tenant, protocol=SLUG, direction="inbound").order_by("id").first()


@tenant_view()
def token_list(request):
    rows = file_upload_tokens(request.tenant).select_related("created_by", "file_upload_link__integration")
    active = sum(1 for row in rows if row.is_active)
    links = {row.pk: TokenLinkForm(tenant=request.tenant, prefix=f"t{row.pk}", initial={
        "process_into": getattr(getattr(row, "file_upload_link", None), "integration_id", None)}) for row in rows}
    return render(request, "protocols/file_upload/tokens.html", {
        "tokens": [(row, links[row.pk]) for row in rows], "active": active, "cap": ApiToken.MAX_ACTIVE_FILE_UPLOAD,
        "files_integration": _files_integration(request.tenant),
        "notifications": Notification.objects.filter(tenant=request.tenant).select_related("upload")[:5],
        **_steps(request)})


@tenant_view(edit=True)
def token_create(request):
    form = TokenForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        try:
            row, token = tokens.issue(request.tenant, request.user, form.cleaned_data["name"],
                                      form.cleaned_data["process_into"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            response = render(request, "protocols/file_upload/token_created.html",
                              {"token_row": row, "token": token, **_steps(request)})
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "protocols/file_upload/token_form.html", {
        "form": form, "cap": ApiToken.MAX_ACTIVE_FILE_UPLOAD,
        "active": file_upload_tokens(request.tenant).active().count()})


def _token(request, pk):
    return get_object_or_404(file_upload_tokens(request.tenant), pk=pk)


@tenant_view(edit=True)
@require_POST
def token_revoke(request, pk):
    token = _token(request, pk)
    services.revoke_api_token(token, request.user)
    messages.success(request, f"Token “{token.name}” revoked. Its URLs that were not used yet stop working too.")
    return redirect("integration_api_tokens", request.tenant.slug)


@tenant_view(edit=True)
@require_POST
def token_link(request, pk):
    token = _token(request, pk)
    form = TokenLinkForm(request.POST, tenant=request.tenant, prefix=f"t{token.pk}")
    if not form.is_valid():
        messages.error(request, "Choose one of this tenant's data integrations.")
    else:
        target = form.cleaned_data["process_into"]
        tokens.link(token, target, request.user)
        messages.success(request, f"Files sent with “{token.name}” from now on are "
                                  + (f"processed into {target.name}." if target else "kept for the team as they are."))
    return redirect("integration_api_tokens", request.tenant.slug)


@tenant_view()
def files_received(request, pk):
    """The File Upload API integration's tab: the notifications of files received."""
    integration = get_object_or_404(Integration.objects.filter(tenant=request.tenant, protocol=SLUG), pk=pk)
    notifications = Notification.objects.filter(tenant=request.tenant, upload__integration=integration) \
        .select_related("upload")
    page = Paginator(notifications, 50).get_page(request.GET.get("page"))
    return render(request, "protocols/file_upload/files.html", {
        "integration": integration, "protocol": integration.protocol_spec, "page": page, **_steps(request)})


urlpatterns = [
    path("integrations/api-tokens/", token_list, name="integration_api_tokens"),
    path("integrations/api-tokens/new/", token_create, name="integration_api_token_new"),
    path("integrations/api-tokens/<int:pk>/revoke/", token_revoke, name="integration_api_token_revoke"),
    path("integrations/api-tokens/<int:pk>/process-into/", token_link, name="integration_api_token_link"),
    path("integrations/<int:pk>/files/", files_received, name="file_upload_files"),
]
