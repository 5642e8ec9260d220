"""Seed 000's receiving end: POST /api/v1/data/<data_type>/ with `Authorization: Token AUTH_TOKEN`."""

from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.auth import IntegrationTokenAuthentication
from uploads.errors import IntakeError, error
from uploads.intake import MAX_UPLOAD_BYTES, receive, too_large

# --- Inbound --------------------------------------------------------------------------


def _error_response(status, error_id, description):
    return JsonResponse({"errors": [error(error_id, description)]}, status=status)


@csrf_exempt  # a machine endpoint: token auth, no cookies; must not read the body for a CSRF check
def missing_trailing_slash(request, data_type):
    """Seed 000: without the trailing '/', name the right URL instead of dropping the body."""
    url = request.build_absolute_uri(reverse("data_upload", args=[data_type]))
    return _error_response(404, "trailing_slash_required", f"The ENDPOINT ends with a trailing '/': POST to {url}")


class DataUploadView(APIView):
    """POST /api/v1/data/<data_type>/ with `Authorization: Token AUTH_TOKEN`: seed 000's receiving end.

    The AUTH_TOKEN decides the tenant and must be the one of this data type's inbound
    integration. The body is never parsed by DRF: the intake reads it in chunks, capped at
    15 MB, as it does for the web form.
    """

    schema = None  # seed 000's own endpoint, documented in docs/protocols.md, not part of /api/v3/
    authentication_classes = [IntegrationTokenAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = []
    renderer_classes = [JSONRenderer]
    throttle_classes = []

    def post(self, request, data_type):
        integration = request.auth.integration
        if (integration.key != data_type or not integration.is_inbound or integration.protocol != "data_integration"
                or request.auth.kind != "auth_token"):
            # The same answer whether or not such a data type exists elsewhere.
            return _error_response(404, "unknown_data_type",
                                   f"This AUTH_TOKEN is not the one of an integration with data type '{data_type}'.")
        body, expected_size = self._body(request)
        upload = receive(
            integration, body, content_type=request.META.get("CONTENT_TYPE", ""), channel="api",
            submitted_via=f"AUTH_TOKEN {request.auth.masked}", expected_size=expected_size,
        )
        return Response({"id": upload.pk, "records": upload.records, "status": upload.status}, status=201)

    @staticmethod
    def _body(request):
        """(a stream to read the body from, its announced size), refused by its Content-Length
        before any of it is read."""
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.strip():
            try:
                size = int(length)
            except ValueError:
                raise drf_exceptions.ParseError("Invalid Content-Length header.")
            if size > MAX_UPLOAD_BYTES:
                raise too_large(size)
            return request._request, size  # Django's reader, limited to Content-Length
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return request.META["wsgi.input"], None  # the server de-chunks; the intake caps what it reads
        return b"", None

    def handle_exception(self, exc):
        if isinstance(exc, IntakeError):
            return Response({"errors": exc.errors}, status=exc.status)
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            described = ("Send the integration's AUTH_TOKEN as 'Authorization: Token AUTH_TOKEN'."
                         if isinstance(exc, drf_exceptions.NotAuthenticated) else "Invalid or revoked AUTH_TOKEN.")
            return Response({"errors": [error("authentication_failed", described)]}, status=401,
                            headers={"WWW-Authenticate": "Token"})
        response = super().handle_exception(exc)
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {"errors": [error("request_refused", str(detail) or "The request was refused.")]}
        return response
