"""Seed 000's client side: POST a file to the vendor's ENDPOINT with `Authorization: Token AUTH_TOKEN`."""

from urllib.parse import urlsplit, urlunsplit

from uploads.delivery.client import OutboundClient, OutboundRequest

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
        token = self.require("auth_token", "vendor AUTH_TOKEN")
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
        return "application/json" if self.integration.settings.get("data_format") == "json" else "text/csv"
