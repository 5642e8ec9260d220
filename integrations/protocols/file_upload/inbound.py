"""Reference 003's receiving end.

Step 1: `POST /api/v1/file-upload/` with `Auth-Api-Token: <TOKEN>` and `{"filename": "<FILE_NAME>"}`
→ 200 `{"id": <integer>, "url": "<where to PUT>"}`. The JSON is written as Python's json module
writes it: `&` stays `&` (never `\\u0026`), `/` stays `/`, so the URL works whether it is read
with `jq -r .url` or pasted as printed.
Step 2 (embedded): `PUT <url>` with the file as its body, no credential header: the URL is
the credential. Errors in both steps are `{"errors": [{"id", "description"}]}`.
"""

import json
from dataclasses import dataclass

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.models import ApiToken
from uploads.errors import IntakeError, error

from . import arrivals, receiving, slots
from .limits import MAX_FILE_BYTES

MAX_REQUEST_BYTES = 64 * 1024  # step 1's JSON is a file name


@dataclass
class Caller:
    """Who the request log (uploads.request_log) attributes a request to: `request.auth.integration`."""

    token: object
    integration: object


def _errors(status, error_id, description, **headers):
    response = JsonResponse({"errors": [error(error_id, description)]}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _refusal(exc):
    return JsonResponse({"errors": exc.errors}, status=exc.status)


@csrf_exempt  # a machine endpoint: a token, no cookies
def request_url(request):
    """Step 1: permission to send one file."""
    if request.method != "POST":
        return _errors(405, "method_not_allowed", "POST {\"filename\": \"<FILE_NAME>\"} here with your API token.",
                       Allow="POST")
    token = (ApiToken.objects.filter(kind=ApiToken.Kind.FILE_UPLOAD).select_related("tenant")
             .find(request.headers.get("Auth-Api-Token", "").strip()))
    if token is None:
        said = ("Send your File Upload API token as 'Auth-Api-Token: <TOKEN>'."
                if not request.headers.get("Auth-Api-Token") else "Invalid or revoked File Upload API token.")
        return _errors(401, "authentication_failed", said, WWW_Authenticate="Auth-Api-Token")
    integration = slots.receiving_integration(token.tenant, token)
    request.auth = Caller(token, integration)
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_REQUEST_BYTES:
            raise IntakeError([error("request_too_large", "Step 1 takes only the file's name; send the file itself "
                                                          "with PUT to the URL it answers.")], 413)
        filename = _filename(request.read(MAX_REQUEST_BYTES + 1))
        slot, url = slots.open_slot(token, integration, filename, request.build_absolute_uri("/"))
    except IntakeError as exc:
        return _refusal(exc)
    except ValueError:
        return _errors(400, "request_malformed", "Invalid Content-Length header.")
    return JsonResponse({"id": slot.pk, "url": url})


def _filename(body):
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise IntakeError([error("request_malformed", 'The request body must be JSON: {"filename": "<FILE_NAME>"}.')]) \
            from None
    return data.get("filename") if isinstance(data, dict) else None


@csrf_exempt  # the signed URL is the credential
def put_file(request, pk, name):
    """Step 2 on the embedded default: the body is the file."""
    if request.method != "PUT":
        return _errors(405, "method_not_allowed", "Send the file with PUT to this URL.", Allow="PUT")
    try:
        slot = slots.verified_slot(pk, name, request.GET)
    except slots.Refused as exc:
        return _errors(exc.status, exc.error_id, exc.description)
    request.auth = Caller(slot.token, slot.integration)
    length = request.META.get("CONTENT_LENGTH", "").strip()
    if not length:
        # As S3 does (411 MissingContentLength): the size decides before anything is read.
        return _errors(411, "length_required", "Send the file with a Content-Length (curl --upload-file does).")
    if not length.isdigit():
        return _errors(400, "request_malformed", "Invalid Content-Length header.")
    if int(length) > MAX_FILE_BYTES:
        return _errors(413, "file_too_large", f"The file is larger than 5 GB ({int(length):,} bytes): "
                                              f"{MAX_FILE_BYTES:,} bytes at most.")
    if not arrivals.claim(slot):
        slot.refresh_from_db()
        if slot.status == slot.Status.RECEIVING:
            return _errors(409, "file_being_received", "A file is being received at this URL right now.")
        return _errors(409, "url_used", "This URL has been used: its file was received already. Request a new "
                                        "URL (step 1) for another file.")
    try:
        name, size, sha256 = receiving.receive_put(slot, request, int(length))
    except IntakeError as exc:
        arrivals.release(slot)
        return _refusal(exc)
    except BaseException:
        arrivals.release(slot)
        raise
    try:
        with transaction.atomic():
            arrivals.record_arrival(slot, name, size, sha256)
    except BaseException:
        receiving.delete_stored(name)
        arrivals.release(slot)
        raise
    return JsonResponse({"id": slot.pk, "filename": slot.filename, "size": size, "sha256": sha256})
