"""Secrets out of everything the delivery engine stores or logs: call-log rows, an upload's
errors, log lines. A protocol's client names its secrets (the vault's values, a fetched
bearer token); anything in a secret-carrying header or query parameter goes too."""

from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

REDACTED = "[redacted]"
SECRET_HEADERS = {"authorization", "proxy-authorization", "auth-api-token", "x-api-key", "cookie", "set-cookie"}
SECRET_QUERY_PARAMS = {
    "token", "access_token", "auth_token", "api_key", "apikey", "key", "secret", "client_secret", "password",
    "sig", "signature", "x-amz-signature", "x-amz-security-token", "x-amz-credential",
}


class Redactor:
    """Replaces secrets in whatever goes into the call log, the upload's errors or a log line."""

    def __init__(self, secrets=()):
        self.secrets = []
        self.add(*secrets)

    def add(self, *secrets):
        """More secrets learnt during an attempt (a bearer token fetched from the vendor)."""
        found = set(self.secrets)
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= 4:
                found.update({secret, quote(secret, safe="")})
        self.secrets = sorted(found, key=len, reverse=True)

    def text(self, value):
        value = "" if value is None else str(value)
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        return value

    def error(self, error, url):
        """An exception's text, with the URL's query (which it may quote) redacted like the URL."""
        text = str(error)
        query = urlsplit(url).query
        if query:
            text = text.replace(query, urlsplit(self.url(url)).query)
        return self.text(text)

    def errors(self, errors):
        """An upload's error list: every field of every error, not just its description, and
        whatever a vendor nested in one (a row given as an object, a list of columns)."""
        return [{name: self._value(value) for name, value in item.items()} for item in errors]

    def _value(self, value):
        if isinstance(value, str):
            return self.text(value)[:1000]
        if isinstance(value, dict):
            return {self.text(key): self._value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(item) for item in value]
        return value  # a number, a boolean, None

    def headers(self, headers):
        return {name: REDACTED if name.lower() in SECRET_HEADERS else self.text(value)
                for name, value in headers.items()}

    def url(self, url):
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        query = "&".join(
            f"{quote(name, safe='')}={REDACTED}" if name.lower() in SECRET_QUERY_PARAMS
            else f"{quote(name, safe='')}={quote(value, safe='')}"
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ) if parts.query else ""
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))
