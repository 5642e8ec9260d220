"""Reference 004's receiving end: POST /api/v1/source/import with `X-API-KEY: <API key>`.

Every answer is a JSON object with a "message"; a malformed request's also lists what is
wrong and where ("details": [{"field", "error"}]). The body is never parsed by DRF: the
intake reads it in chunks, capped at 15 MB, and the protocol's check reads it whole.
"""

from rest_framework import exceptions as drf_exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.auth import HashedTokenAuthentication
from integrations.models import IntegrationToken
from integrations.registry import INBOUND, IssuedCredential
from uploads.errors import IntakeError, error
from uploads.intake import MAX_UPLOAD_BYTES, receive
from uploads.models import Upload

PROTOCOL = "source_import"
API_KEY = IssuedCredential(kind="api_key", label="API key", how_sent="X-API-KEY: <API key>")
STARTED = "REST import started successfully"
MALFORMED = "The request was malformed."


class ApiKeyAuthentication(HashedTokenAuthentication):
    """A REST source's API key, sent as `X-API-KEY: <API key>`; no other credential is one."""

    model = IntegrationToken
    related = ("integration__tenant",)

    def authenticate(self, request):
        key = request.META.get("HTTP_X_API_KEY", "").strip()
        if not key:
            return None  # not authenticated: the permission check answers 401
        return self.authenticate_credentials(key)

    def authenticate_header(self, request):
        return "X-API-KEY"

    def find(self, key):
        keys = self.model.objects.filter(kind=API_KEY.kind, integration__protocol=PROTOCOL,
                                         integration__direction=INBOUND)
        return keys.select_related(*self.related).find(key)

    def tenant_of(self, token):
        return token.integration.tenant


class ImportView(APIView):
    """The seed's Import Data endpoint. The API key decides the REST source; the body's
    source_id must be that source's (the check says "unknown source_id" otherwise)."""

    schema = None  # reference 004's own endpoint, not part of /api/v3/
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = []
    renderer_classes = [JSONRenderer]
    throttle_classes = []

    def post(self, request):
        body, expected_size = request_body(request)
        receive(request.auth.integration, body, channel=Upload.Channel.IMPORT,
                content_type=request.META.get("CONTENT_TYPE", ""), submitted_via=f"API key {request.auth.masked}",
                expected_size=expected_size)
        return Response({"message": STARTED}, status=200)

    def handle_exception(self, exc):
        if isinstance(exc, IntakeError):
            return intake_refusal(exc)
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            said = ("Send the REST source's API key as 'X-API-KEY: <API key>'."
                    if isinstance(exc, drf_exceptions.NotAuthenticated) else "Invalid or revoked API key.")
            return Response({"message": said}, status=401, headers={"WWW-Authenticate": "X-API-KEY"})
        response = super().handle_exception(exc)
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {"message": str(detail) or "The request was refused."}
        return response


def intake_refusal(exc):
    """The intake's refusal in the seed's words: a 400 lists each error's field (its column),
    any other status says what happened in its message."""
    if exc.status == 400:
        details = [{"field": item["column"] or "body", "error": item["description"]} for item in exc.errors]
        return Response({"message": MALFORMED, "details": details}, status=400)
    if exc.status == 413:
        return Response({"message": f"The request body may be {MAX_UPLOAD_BYTES:,} bytes (15 MB) at most."},
                        status=413)
    return Response({"message": exc.errors[0]["description"] if exc.errors else "The request was refused."},
                    status=exc.status)


def request_body(request):
    """(a stream to read the body from, its announced size), refused by its Content-Length
    before any of it is read."""
    length = request.META.get("CONTENT_LENGTH", "").strip()
    if length:
        try:
            size = int(length)
        except ValueError:
            raise IntakeError([error("request_malformed", "expected a number of bytes",
                                     column="Content-Length")]) from None
        if size > MAX_UPLOAD_BYTES:
            raise IntakeError([], status=413)
        return request._request, size  # Django's reader, limited to Content-Length
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return request.META["wsgi.input"], None  # the server de-chunks; the intake caps what it reads
    return b"", None
