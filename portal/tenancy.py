"""Which tenant a request works in, and whether its user may look or change.

A tenant is named in the URL (/t/<slug>/…). A user who is not a member gets 404, so that
another tenant's things cannot even be confirmed to exist.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404

from .models import Membership


def tenant_view(edit=False):
    """Decorate a view taking (request, slug, …): sets request.tenant and request.membership.

    With edit=True, a viewer is refused with 403 ("Integrations: Edit" is needed).
    """

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, slug, *args, **kwargs):
            membership = (
                Membership.objects.select_related("tenant").filter(user=request.user, tenant__slug=slug).first()
            )
            if membership is None:
                raise Http404("No such tenant")
            # Set before the permission check, so that the 403 page keeps the tenant's navigation.
            request.tenant = membership.tenant
            request.membership = membership
            if edit and not membership.can_edit:
                raise PermissionDenied("You need the “Integrations: Edit” permission to do this.")
            try:
                return view(request, *args, **kwargs)
            except ObjectDoesNotExist:
                # What the page acts on was deleted by another request after the page looked it
                # up (a delete racing an edit): gone, as it would be a moment later.
                raise Http404("It was deleted meanwhile.") from None

        return wrapper

    return decorator


def current_tenant(request):
    """Template context: the tenant in the URL and the user's role there."""
    membership = getattr(request, "membership", None)
    return {
        "tenant": getattr(request, "tenant", None),
        "membership": membership,
        "can_edit": bool(membership and membership.can_edit),
    }
