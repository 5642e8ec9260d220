"""Seed 000, "How do I upload data for an API integration?", both ways.

Inbound: the portal is the receiving platform: POST /api/v1/data/<data_type>/.
Outbound: the portal is the client that POSTs a file to a vendor's endpoint.
"""

from django.http import JsonResponse
from rest_framework.views import APIView

# --- Inbound --------------------------------------------------------------------------


def missing_trailing_slash(request, data_type):
    """Seed 000: without the trailing '/', name the right URL instead of dropping the body."""
    url = request.build_absolute_uri(f"/api/v1/data/{data_type}/")
    return JsonResponse(
        {"errors": [{"id": "trailing_slash_required",
                     "description": f"The ENDPOINT ends with a trailing '/': POST to {url}"}]},
        status=404,
    )


class DataUploadView(APIView):
    """Filled in by the intake work (issue: inbound data intake)."""

    schema = None


# --- Outbound -------------------------------------------------------------------------
