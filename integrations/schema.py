"""The OpenAPI schema class of the REST API (settings.REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS).

A module of its own: DRF and drf-spectacular import it while views are being defined, so it
imports nothing of the project.
"""

from drf_spectacular.openapi import AutoSchema

ERROR = {
    "type": "object", "additionalProperties": True,
    "description": 'What is wrong: {"detail": "…"}, or for a request that does not validate, each field\'s '
                   'messages: {"name": ["…"]}.',
    "properties": {"detail": {"type": "string"}},
}
ERRORS = {
    400: "The request does not validate (a parameter or the body); what is wrong, by field.",
    401: "No API token, or an invalid or revoked one.",
    403: "The token may not do this (a read-only token writing).",
    404: "No such object in the token's tenant.",
    415: "The body is not of a media type this operation reads.",
    429: "Too many requests; try again after Retry-After seconds.",
}
# Answered by the web server (gunicorn's limit_request_line, 4,094 bytes by default) before the API
# sees the request, so it is a short HTML page rather than JSON.
URI_TOO_LONG = {
    "description": "The request line (method, path and query string) is longer than 4,094 bytes.",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


class ApiSchema(AutoSchema):
    """The OpenAPI schema of an operation, with the error answers it can give (drf-spectacular
    lists only the successful ones unless told): 401 and 403 for every operation, 400 where it
    takes parameters or a body, 404 for one object, 415 for a body, 429 where throttled, and
    414 where a query string could make the request line too long for the server."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        errors = [401, 403]
        if operation.get("parameters") or operation.get("requestBody"):
            errors.append(400)
        if "{" in path:
            errors.append(404)
        if operation.get("requestBody"):
            errors.append(415)
        if self.view.get_throttles():
            errors.append(429)
        for code in errors:
            operation["responses"].setdefault(str(code), {
                "description": ERRORS[code], "content": {"application/json": {"schema": ERROR}}})
        if any(parameter["in"] == "query" for parameter in operation.get("parameters", [])):
            operation["responses"].setdefault("414", URI_TOO_LONG)
        return operation
