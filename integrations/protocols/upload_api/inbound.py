"""Reference 002's receiving end, under /api/upload-api/:

    POST token        OAuth 2.0 client credentials: django-oauth-toolkit's TokenView
    POST UploadData   Bearer token; the submission (JSON) → its processing token, a JSON string
    GET  GetResults   Bearer token; ?token=<processing token>&dataKey=status|feedback|tableofresultids&key=<API key>

A refused request answers {"errors": [{"id", "field", "description"}]}: 400 for a request
that is itself wrong (naming the field), 401 for a missing, unknown or expired token, 403
for a token without the platform_upload_api scope, 404 for a processing token this client's
integration does not have (whether or not another has it), 409 for output that is not there
(yet). The body is never parsed by DRF: the view reads it under its own cap.
"""

from django.http import QueryDict, StreamingHttpResponse
from oauth2_provider.contrib.rest_framework import TokenHasScope
from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import TokenView
from rest_framework import exceptions as drf_exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from uploads.errors import IntakeError, error

from . import submissions
from .credentials import SCOPE, BearerAuthentication, is_api_key
from .document import INVALID, KEY_INVALID, REQUIRED, TOO_LARGE, read_request, refusal

CHUNK_BYTES = 256 * 1024
SEED_FORM_TYPE = "x-www-form-urlencoded"  # the seed's spelling of application/x-www-form-urlencoded


# --- The token endpoint ---------------------------------------------------------------------


class SeedFormCore(OAuthLibCore):
    """Django reads a form body only when it is sent as application/x-www-form-urlencoded; the seed
    writes the content type as `x-www-form-urlencoded`, so a client that sends exactly that has
    its body read as the same form here."""

    def extract_body(self, request):
        if request.content_type == SEED_FORM_TYPE:
            form = QueryDict(request.body, encoding=request.encoding)
            return [(key, value) for key, values in form.lists() for value in values[-1:]]
        return super().extract_body(request)


class UploadApiTokenView(TokenView):
    """DOT's token endpoint (client credentials, HTTP Basic client authentication with the
    form-encoded client id and secret), reading the seed's content type too."""

    oauthlib_backend_class = SeedFormCore

    @classmethod
    def get_oauthlib_core(cls):
        # DOT caches the core on the class; this class keeps its own, not TokenView's.
        if "_oauthlib_core" not in vars(cls) or oauth2_settings.ALWAYS_RELOAD_OAUTHLIB_CORE:
            cls._oauthlib_core = cls.get_oauthlib_backend_class()(cls.get_server())
        return cls._oauthlib_core


# --- UploadData and GetResults --------------------------------------------------------------


def problem(error_id, description, field=None):
    return {"id": error_id, "field": field, "description": description}


class UploadApiView(APIView):
    schema = None  # reference 002's own endpoints, documented in docs/protocols.md, not part of /api/v3/
    authentication_classes = [BearerAuthentication]
    permission_classes = [IsAuthenticated, TokenHasScope]
    required_scopes = [SCOPE]
    parser_classes = []
    renderer_classes = [JSONRenderer]
    throttle_classes = []

    def handle_exception(self, exc):
        if isinstance(exc, IntakeError):
            return Response({"errors": [problem(item["id"], item["description"], item["column"])
                                        for item in exc.errors]}, status=exc.status)
        response = super().handle_exception(exc)  # keeps DOT's WWW-Authenticate: Bearer challenge on a 401
        if response.status_code == 401:
            said = ("Send a bearer token from the token endpoint: 'Authorization: Bearer <access_token>'."
                    if isinstance(exc, drf_exceptions.NotAuthenticated) else str(exc.detail))
            response.data = {"errors": [problem("invalid_token", f"{said} An unknown or expired token is refused; "
                                                                 "ask the token endpoint for a new one.")]}
        elif response.status_code == 403 and isinstance(exc, drf_exceptions.PermissionDenied):
            response.data = {"errors": [problem("insufficient_scope", f"This token does not carry the {SCOPE} "
                                                                      f"scope; ask the token endpoint for "
                                                                      f"scope={SCOPE}.")]}
        else:
            detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
            response.data = {"errors": [problem("request_refused", str(detail) or "The request was refused.")]}
        return response


class UploadDataView(UploadApiView):
    """POST …/UploadData: the submission's Name, Data, EventData, Username, Key and Overwrite."""

    def post(self, request):
        principal = request.user
        integration = principal.integration
        body = read_body(request, integration.protocol_spec.max_upload_bytes)
        submitted = read_request(body, principal.client_id, lambda key: is_api_key(integration, key))
        submission = submissions.submit(integration, submitted, principal, principal.client_id)
        return Response(submission.token)


class GetResultsView(UploadApiView):
    """GET …/GetResults?token=…&dataKey=…&key=…: the state, feedback or result ids of a submission."""

    def get(self, request):
        integration = request.user.integration
        params = request.query_params
        token, key = params.get("token", "").strip(), params.get("key", "").strip()
        data_key = (params.get("dataKey") or params.get("datakey") or "").strip().lower()
        problems = []
        if not token:
            problems.append(error(REQUIRED, "token is required: the processing token UploadData answered.",
                                  column="token"))
        if data_key not in submissions.DATA_KEYS:
            problems.append(error(INVALID, f"dataKey must be one of {', '.join(submissions.DATA_KEYS)}.",
                                  column="dataKey"))
        if not key:
            problems.append(error(REQUIRED, "key is required: the integration's API key.", column="key"))
        elif not is_api_key(integration, key):
            problems.append(error(KEY_INVALID, "key is not the API key of this client's integration (or it was "
                                               "regenerated); see the integration's Credentials tab.", column="key"))
        if problems:
            raise IntakeError(problems)
        submission = submissions.find(integration, token)
        if submission is None:
            # The same answer whether the token is another tenant's or nobody's.
            return Response({"errors": [problem("not_found", "No submission has this processing token.", "token")]},
                            status=404)
        try:
            if data_key == "status":
                return Response(submissions.state(submission))
            if data_key == "feedback":
                return Response(submissions.feedback(submission))
            ids = submissions.result_ids(submission)
        except submissions.NoOutput as exc:
            return Response({"errors": [problem(exc.error_id, exc.description, "dataKey")]}, status=409)
        return StreamingHttpResponse(submissions.stream_json_list(ids), content_type="application/json")


def read_body(request, limit):
    """The request body, refused (400, field "body") as soon as it is known to pass the limit: by
    its Content-Length before any of it is read, else while it is read."""
    length = request.META.get("CONTENT_LENGTH", "").strip()
    too_large = refusal("body", TOO_LARGE, f"The request body may be {limit:,} bytes ({limit // 2 ** 20} MB) "
                                           "at most.")
    if length:
        try:
            size = int(length)
        except ValueError:
            raise refusal("Content-Length", INVALID, "Content-Length must be a number of bytes.") from None
        if size > limit:
            raise too_large
        stream = request._request  # Django's reader, limited to Content-Length
    elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        stream = request.META["wsgi.input"]  # the server de-chunks; the cap is kept below
    else:
        return b""
    chunks, size = [], 0
    while chunk := stream.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
