from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect, render

from .models import AuditEvent
from .tenancy import tenant_view


@login_required
def home(request):
    """Straight to the user's tenant (its dashboard); a picker when there are several."""
    memberships = request.user.memberships.select_related("tenant").order_by("tenant__name")
    if len(memberships) == 1:
        return redirect("dashboard", memberships[0].tenant.slug)
    return render(request, "portal/home.html", {"memberships": memberships})


def readable(detail):
    """An event's details in words: "fields: name, sandbox; dry run: yes", not Python's reprs."""
    def words(value):
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (list, tuple)):
            return ", ".join(words(v) for v in value) or "none"
        if isinstance(value, dict):
            return ", ".join(f"{k.replace('_', ' ')} {words(v)}" for k, v in value.items())
        return str(value).replace("_", " ") if isinstance(value, str) and value.isidentifier() else str(value)

    return "; ".join(f"{key.replace('_', ' ')}: {words(value)}" for key, value in (detail or {}).items())


@tenant_view()
def activity(request):
    events = AuditEvent.objects.filter(tenant=request.tenant).select_related("integration")
    action = request.GET.get("action")
    if action:
        events = events.filter(action=action)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    for event in page:
        event.details = readable(event.detail)
        event.what = event.action_label
    return render(request, "portal/activity.html",
                  {"page": page, "actions": AuditEvent.action_choices(), "action": action})


def not_found(request, exception=None):
    """404: the machine endpoints answer JSON, as every other answer of theirs; pages the portal's own page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)
