"""Seed 000, "How do I upload data for an API integration?", both ways.

Inbound: the portal is the receiving platform: POST /api/v1/data/<data_type>/.
Outbound: the portal is the client that POSTs a file to a vendor's endpoint.
"""

from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.auth import IntegrationTokenAuthentication
from integrations.models import Protocol
from uploads.errors import IntakeError, error
from uploads.intake import MAX_UPLOAD_BYTES, accept_upload, too_large

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
    integration. The body is read here, in chunks and capped at 15 MB, never parsed by DRF;
    `accept_upload` does the rest, as it does for the web form.
    """

    schema = None  # seed 000's own endpoint, documented in docs/protocols.md, not part of /api/v3/
    authentication_classes = [IntegrationTokenAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = []
    renderer_classes = [JSONRenderer]
    throttle_classes = []

    def post(self, request, data_type):
        integration = request.auth.integration
        if (integration.data_type != data_type or not integration.is_inbound
                or integration.protocol != Protocol.DATA_INTEGRATION):
            # The same answer whether or not such a data type exists elsewhere.
            return _error_response(404, "unknown_data_type",
                                   f"This AUTH_TOKEN is not the one of an integration with data type '{data_type}'.")
        if not integration.enabled:
            return _error_response(403, "integration_disabled", "This integration is disabled.")
        upload = accept_upload(
            integration, self._body(request), content_type=request.META.get("CONTENT_TYPE", ""),
            channel="api", submitted_via=f"AUTH_TOKEN {request.auth.masked}",
        )
        return Response({"id": upload.pk, "records": upload.records, "status": upload.status}, status=201)

    @staticmethod
    def _body(request):
        """A stream to read the body from, refused by its Content-Length before any of it is read."""
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.strip():
            try:
                size = int(length)
            except ValueError:
                raise drf_exceptions.ParseError("Invalid Content-Length header.")
            if size > MAX_UPLOAD_BYTES:
                raise too_large(size)
            return request._request  # Django's reader, limited to Content-Length
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return request.META["wsgi.input"]  # the server de-chunks; accept_upload caps what it reads
        return b""

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


# --- Outbound -------------------------------------------------------------------------

from urllib.parse import urlsplit, urlunsplit  # noqa: E402

from integrations.outbound import NotConfigured, OutboundClient, OutboundRequest  # noqa: E402

# Seed 000's content types, the seed's misspelling of the Excel one put right on the way out.
OUTBOUND_CONTENT_TYPES = {"application/json", "text/csv", "application/vnd.ms-excel"}


def with_trailing_slash(url):
    """Seed 000: 'You must include the trailing "/"', or the vendor closes the connection."""
    parts = urlsplit(url)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class DataIntegrationClient(OutboundClient):
    """POST the file to the vendor's ENDPOINT with `Authorization: Token AUTH_TOKEN`; 201 = delivered.

    Any other answer is not a delivery: the vendor's error ids (import_parse_json,
    import_parse_csv, import_transform_data …) end up on the upload.
    """

    delivered_statuses = {201}

    def prepare(self, upload, body):
        token = self.credentials.get("auth_token")
        if not token:
            raise NotConfigured("No vendor AUTH_TOKEN is stored for this integration; add it on its Settings tab.")
        return OutboundRequest(
            "POST", with_trailing_slash(self.integration.endpoint_url),
            headers={"Authorization": f"Token {token}", "Content-Type": self.content_type(upload),
                     "Accept": "application/json"},
            body=body,
        )

    def content_type(self, upload):
        sent = (upload.content_type or "").split(";", 1)[0].strip().lower().replace("vns.ms-excel", "vnd.ms-excel")
        if sent in OUTBOUND_CONTENT_TYPES:
            return sent
        return "application/json" if self.integration.data_format == "json" else "text/csv"
