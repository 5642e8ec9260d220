"""The pages of an inbound Upload API integration: its Records tab, and issuing its OAuth client's
secret (shown once, on the Credentials tab). Thin: look the integration up in the tenant,
call the work, render."""

from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.views.decorators.http import require_POST

from integrations.models import Integration
from integrations.registry import INBOUND
from portal.tenancy import tenant_view

from .credentials import PROTOCOL, issue_client_secret
from .models import EventRecord, TimeRecord

PAGE_SIZE = 50


def _integration(request, pk):
    inbound = Integration.objects.filter(tenant=request.tenant, protocol=PROTOCOL, direction=INBOUND)
    return get_object_or_404(inbound, pk=pk)


@tenant_view()
def records(request, pk):
    """The Names (datasets) and the records they hold now, newest first; ?name= shows one Name's."""
    integration = _integration(request, pk)
    name = request.GET.get("name", "").strip()
    times = TimeRecord.objects.filter(integration=integration).select_related("submission", "account")
    events = EventRecord.objects.filter(integration=integration).select_related("submission", "account")
    if name:
        times, events = times.filter(submission__name=name), events.filter(submission__name=name)
    counts = {}
    for model, label in ((TimeRecord, "times"), (EventRecord, "events")):
        for row in model.objects.filter(integration=integration).values("submission").annotate(n=Count("id")):
            counts.setdefault(row["submission"], {})[label] = row["n"]
    datasets = list(integration.upload_api_datasets.select_related("live__upload").order_by("name"))
    for dataset in datasets:
        dataset.counts = counts.get(dataset.live_id, {})
    return render(request, "protocols/upload_api/records.html", {
        "integration": integration, "tab": "records", "protocol": integration.protocol_spec, "datasets": datasets,
        "name": name, "page": Paginator(times.order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page")),
        "events": events.order_by("-id")[:PAGE_SIZE],
    })


@tenant_view(edit=True)
@require_POST
def client_secret(request, pk):
    """Issue the OAuth client (or a new secret for it) and show the secret, once, in this response."""
    integration = _integration(request, pk)
    client_id, secret = issue_client_secret(integration, request.user)
    protocol = integration.protocol_spec
    response = render(request, "integrations/credentials.html", {
        "integration": integration, "tab": "credentials", "protocol": protocol, "issued": protocol.issued,
        "active_token": integration.tokens.active().filter(kind=protocol.issued.kind).first(),
        "endpoint": integration.endpoint(request), "new_client_secret": secret,
    })
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("integrations/<int:pk>/records/", records, name="upload_api_records"),
    path("integrations/<int:pk>/oauth-client/", client_secret, name="upload_api_client_secret"),
]
