from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render

from .models import AuditEvent
from .tenancy import tenant_view


@login_required
def home(request):
    """Straight to the user's tenant; a picker when there are several."""
    memberships = request.user.memberships.select_related("tenant").order_by("tenant__name")
    if len(memberships) == 1:
        return redirect("integration_list", memberships[0].tenant.slug)
    return render(request, "portal/home.html", {"memberships": memberships})


@tenant_view()
def activity(request):
    events = AuditEvent.objects.filter(tenant=request.tenant).select_related("integration")
    action = request.GET.get("action")
    if action:
        events = events.filter(action=action)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(request, "portal/activity.html",
                  {"page": page, "actions": AuditEvent.Action.choices, "action": action})
