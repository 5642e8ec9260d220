"""Reference 002's client side: the portal calls a vendor's Upload API.

One attempt: a bearer token (client credentials from the vault, HTTP Basic with the client
id and secret form-encoded, as the seed says; cached per integration until shortly before it
expires), then UploadData with the file's rows as Data, then GetResults status. While the
vendor is still processing, the attempt ends with "check again later": the delivery engine
queues the next attempt with a countdown (no worker sleeps), and that attempt polls again
with the processing token kept in the dispatch's progress. Once completedsuccessfully it
fetches tableofresultids; any other final state fetches feedback, which becomes the upload's
errors. Every exchange is one call-log row, the bearer token redacted everywhere.
"""

import base64
import hashlib
import json
import re
from urllib.parse import quote, urlencode

from django.core.cache import cache

from integrations import vault
from uploads.delivery.client import (
    NotConfigured, OutboundClient, OutboundRequest, Outcome, answer_errors, error, failure,
)
from uploads.delivery.exchange import Exchanges
from uploads.delivery.redaction import REDACTED, Redactor
from uploads.errors import IntakeError

from . import datasets
from .credentials import SCOPE

DEFAULT_NAME = "portal-{integration}-{upload}"
COMPLETED = "completedsuccessfully"
# States in which a vendor is still working on a submission (ours, and common other spellings).
PENDING = {"queued", "waiting", "processing", "pending", "inprogress", "in progress", "running", "received", "accepted"}
POLL_DELAYS = (2, 4, 8, 15, 30, 60)  # seconds before each next status check; then every 60 s
MAX_POLLS = 240  # about four hours of checking
TOKEN_MARGIN_SECONDS = 60  # a cached token is dropped this long before the vendor says it expires
PROGRESS_TOKEN = "processing_token"
TOKEN_FIELDS = re.compile(r'("(?:access_token|refresh_token|id_token)"\s*:\s*)"[^"]*"')


class TokenAnswerRedactor(Redactor):
    """The token endpoint's answer carries the bearer token before the client can name it: its
    token fields are redacted on sight, so that it never reaches the call log."""

    def text(self, value):
        return TOKEN_FIELDS.sub(rf'\1"{REDACTED}"', super().text(value))


class Stop(Exception):
    """An attempt ends here, with this outcome."""

    def __init__(self, outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


class UploadApiVendorClient(OutboundClient):
    """Token → UploadData → GetResults (status, then tableofresultids or feedback), over several attempts."""

    def __init__(self, integration, credentials):
        super().__init__(integration, credentials)
        self._token = None  # the bearer token of this attempt (a client is made for each attempt)

    # --- configuration --------------------------------------------------------------------------
    @property
    def base_url(self):
        return self.integration.endpoint_url.rstrip("/")

    @property
    def token_url(self):
        url = (self.integration.settings or {}).get("token_url")
        if not url:
            raise NotConfigured("No token URL is set for this integration; add the vendor's on its Upload API tab.")
        return url

    @property
    def name_template(self):
        return (self.integration.settings or {}).get("submission_name") or DEFAULT_NAME

    def name_for(self, upload):
        """The submission's Name: the same for every attempt and every resend of an upload."""
        return self.name_template.format(integration=self.integration.pk, upload=upload.pk)

    def secrets(self):
        """The client secret and the API key (also as they appear inside JSON); the client id is
        not a secret, and stays readable in the call log."""
        found = []
        for name in ("client_secret", "api_key"):
            value = self.credentials.get(name)
            if isinstance(value, str) and value:
                found += [value, json.dumps(value)[1:-1]]
        return found

    # --- requests -------------------------------------------------------------------------------
    def token_request(self):
        client_id = self.require("client_id", "vendor client id")
        client_secret = self.require("client_secret", "vendor client secret")
        # The seed: base64(<client_id>:<url_encoded_client_secret>); the client id is form-encoded
        # too, as OAuth 2.0 says (a no-op for the usual letters, digits and dashes).
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        return OutboundRequest(
            "POST", self.token_url,
            headers={"Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                     "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            body=urlencode({"grant_type": "client_credentials", "scope": SCOPE}).encode(),
        )

    def upload_data_request(self, upload, body, token, overwrite):
        document = {"Name": self.name_for(upload), "Data": self.data_of(upload, body),
                    "Username": self.require("client_id", "vendor client id"),
                    "Key": self.require("api_key", "vendor API key"), "Overwrite": overwrite}
        return OutboundRequest("POST", f"{self.base_url}/UploadData", headers=self.bearer(token, json_body=True),
                               body=json.dumps(document, ensure_ascii=False).encode())

    def get_results_request(self, processing_token, data_key, token):
        query = urlencode({"token": processing_token, "dataKey": data_key,
                           "key": self.require("api_key", "vendor API key")})
        return OutboundRequest("GET", f"{self.base_url}/GetResults?{query}", headers=self.bearer(token))

    @staticmethod
    def bearer(token, json_body=False):
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    @staticmethod
    def data_of(upload, body):
        """The file's rows as the seed's Data: its columns in the seed's order, a header row first."""
        with body.open() as file:
            text = datasets.decode(file.read())
        feedback = datasets.Feedback()
        rows = datasets.read(datasets.DATA, text, feedback)
        if rows is None:  # checked when it was uploaded; only a changed file gets here
            raise IntakeError(feedback.errors(qualified=False))
        return rows.as_csv(datasets.DATA)

    def dry_run(self, upload, body):
        """Sandbox Mode: the three requests the first attempt starts with, exactly (secrets redacted)."""
        placeholder = "ACCESS_TOKEN"
        return [self.token_request(), self.upload_data_request(upload, body, placeholder, self.overwrite(upload, 1)),
                self.get_results_request("PROCESSING_TOKEN", "status", placeholder)]

    def overwrite(self, upload, attempt):
        """Overwrite true on every resend and retry (the vendor may hold the Name already), and
        always for a Name without {upload} (each upload replaces the one dataset)."""
        return "{upload}" not in self.name_template or attempt > 1 or upload.dispatches.count() > 1

    # --- an attempt -----------------------------------------------------------------------------
    def send(self, http, upload, body, progress):
        try:
            if not progress.get(PROGRESS_TOKEN):
                progress = self.upload(http, upload, body)
            if not progress.get("completed"):
                outcome = self.check_status(http, progress)
                if outcome is not None:
                    return outcome
            return self.fetch_ids(http, progress)
        except Stop as stop:
            return stop.outcome
        except IntakeError as exc:
            return Outcome(False, message=f"The file no longer reads as Data: {exc}", errors=exc.errors)

    def upload(self, http, upload, body):
        name = self.name_for(upload)
        overwrite = self.overwrite(upload, http.attempt)
        answer = self.authorized(http, lambda token: self.upload_data_request(upload, body, token, overwrite))
        if answer.status_code != 200:
            raise Stop(self.refused(answer, f"The vendor refused the submission “{name}”", {}))
        processing_token = read_string(answer)
        if not processing_token:
            raise Stop(Outcome(False, message=f"The vendor accepted “{name}” but sent no processing token.",
                               errors=[error("vendor_no_token", answer.text[:300] or "empty answer")]))
        progress = {"name": name, PROGRESS_TOKEN: processing_token, "polls": 0}
        http.keep_progress(progress)  # a later failure polls this token, it does not upload again
        return progress

    def check_status(self, http, progress):
        """None when the vendor completed successfully; otherwise the attempt's outcome."""
        answer = self.results(http, progress, "status")
        status = read_string(answer).lower()
        name = progress["name"]
        if status == COMPLETED:
            progress["completed"] = True
            return None
        if status in PENDING:
            polls = int(progress.get("polls", 0)) + 1
            progress = {**progress, "polls": polls}
            if polls > MAX_POLLS:
                return Outcome(False, progress=progress, errors=[error("vendor_still_processing", status)], message=(
                    f"The vendor was still processing “{name}” after {MAX_POLLS} checks; resend it to try again."))
            delay = POLL_DELAYS[min(polls, len(POLL_DELAYS)) - 1]
            return Outcome(False, check_later=True, retry_after=delay, progress=progress,
                           message=f"The vendor is processing “{name}” (status: {status}); checking again in "
                                   f"{delay} s.")
        return self.fetch_feedback(http, progress, status or "(empty)")

    def fetch_feedback(self, http, progress, status):
        answer = self.results(http, progress, "feedback")
        problems = feedback_errors(answer)
        return Outcome(False, progress=progress, errors=problems, message=(
            f"The vendor did not complete “{progress['name']}” successfully (status: {status}): "
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''}, listed below. Fix the file and send "
            "it again: the resend overwrites the same Name."))

    def fetch_ids(self, http, progress):
        answer = self.results(http, progress, "tableofresultids")
        ids = answer.json()
        counted = (f"{len(ids):,} result ids" if isinstance(ids, list) and not answer.truncated
                   else "its result ids are in the call log")
        return Outcome(True, progress=progress, message=(
            f"Delivered: the vendor processed “{progress['name']}” (processing token {progress[PROGRESS_TOKEN]}); "
            f"{counted}."))

    def results(self, http, progress, data_key):
        """A GetResults answer of 200, or Stop: 429 and 5xx come back later, anything else fails."""
        token = progress[PROGRESS_TOKEN]
        answer = self.authorized(http, lambda bearer: self.get_results_request(token, data_key, bearer))
        if answer.status_code != 200:
            raise Stop(self.refused(answer, f"The vendor refused GetResults ({data_key}) for “{progress['name']}”",
                                    progress))
        return answer

    # --- the bearer token -----------------------------------------------------------------------
    def authorized(self, http, build):
        """Make a request with the cached token; on a 401, once more with a fresh one."""
        answer = http.exchange(build(self.access_token(http)))
        if answer.status_code == 401:
            cache.delete(self.cache_key())
            answer = http.exchange(build(self.access_token(http, fresh=True)))
        return answer

    def cache_key(self):
        """Per integration, and per client and token URL: new credentials never reuse an old token."""
        fingerprint = hashlib.sha256("\n".join([self.token_url, self.credentials.get("client_id", ""),
                                                self.credentials.get("client_secret", "")]).encode()).hexdigest()
        return f"upload_api:token:{self.integration.pk}:{fingerprint[:32]}"

    def access_token(self, http, fresh=False):
        """The bearer token: this attempt's, else the cached one, else a new one from the vendor."""
        if self._token and not fresh:
            return self._token
        key = self.cache_key()
        cached = None if fresh else cache.get(key)
        if cached:
            token = vault.decrypt(cached).get("access_token", "")
            if token:
                http.redactor.add(token)
                self._token = token
                return token
        answer = self.token_exchange(http)
        data = answer.json() if answer.status_code == 200 else None
        token = data.get("access_token") if isinstance(data, dict) else None
        if answer.status_code == 200 and isinstance(token, str) and token:
            http.redactor.add(token)
            self._token = token
            lifetime = data.get("expires_in")
            lifetime = int(lifetime) if isinstance(lifetime, (int, float)) or str(lifetime).isdigit() else 3600
            if lifetime > TOKEN_MARGIN_SECONDS:
                # Encrypted like every vendor secret: a shared cache (Redis) never holds it in clear.
                cache.set(key, vault.encrypt({"access_token": token}), lifetime - TOKEN_MARGIN_SECONDS)
            return token
        raise Stop(self.token_refused(answer))

    def token_exchange(self, http):
        """The token request, logged with a redactor that hides the token fields of the answer."""
        exchanges = Exchanges(http.dispatch, http.attempt, TokenAnswerRedactor(http.redactor.secrets), http.session,
                              integration=http.integration)
        try:
            return exchanges.exchange(self.token_request())
        finally:
            http.rows.extend(exchanges.rows)  # the engine notes a retry's delay on the attempt's last row

    def token_refused(self, answer):
        data = answer.json()
        said = ""
        if isinstance(data, dict):
            said = " ".join(str(data[k]) for k in ("error", "error_description") if data.get(k))
        if answer.status_code == 429 or answer.status_code >= 500:
            return failure(answer, refused="The vendor's token endpoint refused the request")  # passing: retried
        if answer.status_code in (401, 403) or said.startswith(("invalid_client", "unauthorized_client")):
            return Outcome(False, errors=[error("vendor_token_refused", said or f"HTTP {answer.status_code}")],
                           message=f"The vendor's token endpoint refused the client id and secret "
                                   f"({answer.status_code}{': ' + said if said else ''}). Check the client id and "
                                   "secret the vendor issued and replace them on the Settings tab, then resend.")
        if said.startswith("invalid_scope"):
            return Outcome(False, errors=[error("vendor_token_refused", said)],
                           message=f"The vendor's token endpoint refused the scope {SCOPE} ({said}); ask the vendor "
                                   "to allow it for this client.")
        if answer.status_code == 200:
            return Outcome(False, errors=[error("vendor_no_token", "no access_token in the answer")],
                           message="The vendor's token endpoint answered without an access_token.")
        return failure(answer, refused="The vendor's token endpoint refused the request")

    def refused(self, answer, what, progress):
        """A non-200 answer: 429 and 5xx are passing (retried with the progress kept); any other fails."""
        if answer.status_code == 401:
            outcome = Outcome(False, errors=answer_errors(answer), message=(
                f"{what} (401) even with a fresh bearer token; check the client id and secret on the Settings tab."))
        else:
            outcome = failure(answer, refused=what)
            outcome.errors = request_errors(answer) or outcome.errors
        outcome.progress = progress or None
        return outcome


def read_string(answer):
    """The vendor's answer as one string: a JSON string, {"status"|"token": …}, or plain text."""
    data = answer.json()
    if isinstance(data, str):
        return data.strip()
    if isinstance(data, dict):
        for name in ("status", "Status", "token", "Token", "processingToken", "ProcessingToken"):
            if isinstance(data.get(name), str):
                return data[name].strip()
        return ""
    return answer.text.strip().strip('"') if data is None else ""


def request_errors(answer):
    """A refused request's errors as the portal's inbound side writes them ({"errors": [{"id",
    "field", "description"}]}), the field kept as the error's column."""
    data = answer.json()
    items = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [error(item.get("id") or f"http_{answer.status_code}", item.get("description") or item.get("message") or "",
                  None, item.get("field") or item.get("column"))
            for item in items[:100] if isinstance(item, dict)]


def feedback_errors(answer):
    """GetResults feedback as the upload's errors: rows of Data are the file's rows, so their
    columns are the file's; EventData's are named with their dataset."""
    data = answer.json()
    if not isinstance(data, list):
        return answer_errors(answer)
    found = []
    for item in data[:100]:
        if not isinstance(item, dict):
            found.append(error("vendor_feedback", item))
            continue
        fields = {str(k).lower(): v for k, v in item.items()}
        dataset, column = fields.get("dataset"), fields.get("column")
        if dataset and dataset != datasets.DATA.name:
            column = f"{dataset}.{column}" if column else dataset
        row = fields.get("row")
        found.append(error("vendor_feedback", fields.get("message") or fields.get("description") or
                           fields.get("error") or item, row if isinstance(row, int) else None, column))
    return found or [error("vendor_feedback", "The vendor listed no problems.")]
