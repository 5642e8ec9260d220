"""Every URL of the portal, plus POST /bench/trivial/: {"ok": true}, without touching the database,
through the same middleware. The ceiling of what the server answers, measured in the same run."""

from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt  # a machine endpoint, as the data endpoint is
def trivial(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/trivial/", trivial),
    path("", include("portal.urls")),
]
