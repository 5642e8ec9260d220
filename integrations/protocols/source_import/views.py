"""A REST source's Entries tab: what it received, newest first, searchable by name and content."""

from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, render
from django.urls import path

from integrations.models import Direction, Integration
from portal.tenancy import tenant_view

from .inbound import PROTOCOL
from .models import FeedbackEntry

PER_PAGE = 50


def search_entries(entries, query):
    """Entries whose name or content holds the query (any case)."""
    query = query.strip()
    if not query:
        return entries
    return entries.filter(Q(name__icontains=query) | Q(content__icontains=query))


@tenant_view()
def entries_tab(request, pk):
    integration = get_object_or_404(
        Integration.objects.filter(tenant=request.tenant, protocol=PROTOCOL, direction=Direction.INBOUND), pk=pk)
    query = request.GET.get("q", "").strip()
    entries = search_entries(FeedbackEntry.objects.filter(integration=integration), query).order_by("-date", "-id")
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "protocols/source_import/entries.html", {
        "integration": integration, "tab": "entries", "page": page, "query": query,
        "endpoint": integration.endpoint(request),
    })


urlpatterns = [
    path("integrations/<int:pk>/entries/", entries_tab, name="source_import_entries"),
]
