"""Reference 004's client side: a file's entries POSTed to a vendor's import endpoint, in batches.

Each batch is one request, `{"source_id", "payload": [...]}` with `X-API-KEY`; 200 means
the batch is in. The number of batches delivered is kept on the dispatch, so that a retry
resumes at the batch that failed and no batch that went through is sent again.
"""

import json
import re
from functools import cached_property

import requests

from uploads.delivery.client import OutboundClient, OutboundRequest, Outcome, answer_errors, error, failure
from uploads.errors import IntakeError

from .files import read_file
from .mapping import Mapping

PROGRESS = "batches_delivered"
ENTRY_FIELD = re.compile(r"^payload\[(\d+)\](?:\.(\w+))?$")


class SourceImportClient(OutboundClient):
    """Sends several requests per file (one per batch), so it overrides send() and keeps count."""

    delivered_statuses = {200, 201, 202}

    @cached_property
    def mapping(self):
        return Mapping.of(self.integration)

    def batches(self, upload, body):
        """The file's entries as the seed's payloads, batch_size entries each."""
        with body.open() as file:
            frame = read_file(self.mapping, file.read(), upload.content_type)
        entries = frame.to_dict("records")
        size = self.mapping.batch_size
        return [entries[start:start + size] for start in range(0, len(entries), size)]

    def request(self, batch):
        api_key = self.require("api_key", "vendor API key")
        body = json.dumps({"source_id": self.integration.key, "payload": batch}, ensure_ascii=False)
        return OutboundRequest(
            "POST", self.integration.endpoint_url,
            headers={"X-API-KEY": api_key, "Content-Type": "application/json", "Accept": "application/json"},
            body=body.encode(),
        )

    def dry_run(self, upload, body):
        return [self.request(self.batches(upload, body)[0])]

    def send(self, http, upload, body, progress):
        try:
            batches = self.batches(upload, body)
        except IntakeError as exc:  # the settings changed since the file was checked
            return Outcome(False, message=f"The file no longer fits the Source tab: {exc}", errors=exc.errors)
        delivered = int(progress.get(PROGRESS, 0))
        total = len(batches)
        for number in range(delivered, total):
            where = f"batch {number + 1} of {total}"
            try:
                answer = http.exchange(self.request(batches[number]))
            except (requests.ConnectionError, requests.Timeout) as exc:
                # Retried by the engine as any unreachable vendor is, but from this batch on.
                return Outcome(False, retryable=True, progress={PROGRESS: delivered},
                               message=f"The vendor could not be reached at {where} ({type(exc).__name__}).",
                               errors=[error("outbound_unreachable", f"{type(exc).__name__}: {exc}")])
            if answer.status_code not in self.delivered_statuses:
                return self.refused(answer, where, offset=number * self.mapping.batch_size, delivered=delivered)
            delivered = number + 1
            self.remember(http, delivered)
        entries = sum(len(batch) for batch in batches)
        return Outcome(True, progress={PROGRESS: total},
                       message=f"Delivered {entries:,} entries in {total} batch{'es' if total != 1 else ''}.")

    @staticmethod
    def remember(http, delivered):
        """Keep the count as soon as a batch is in, not only when the attempt ends: an attempt
        taken over from a worker that died mid-way resumes after it too."""
        http.keep_progress({PROGRESS: delivered})

    def refused(self, answer, where, offset, delivered):
        """A batch not taken: 429 and 5xx are passing (the retry resumes here), a 400 says
        what is wrong with the entries, any other answer fails for good."""
        progress = {PROGRESS: delivered}
        if answer.status_code != 400:
            outcome = failure(answer)
            outcome.message = f"At {where}: {outcome.message}"
            outcome.progress = progress
            return outcome
        data = answer.json()
        said = data.get("message") if isinstance(data, dict) and isinstance(data.get("message"), str) else ""
        said = said or answer.text[:300] or "no reason given"
        return Outcome(False, message=f"The vendor refused {where} (400): {said}",
                       errors=self.entry_errors(data, offset) or answer_errors(answer), progress=progress)

    def entry_errors(self, data, offset):
        """The vendor's 400 details ({"field": "payload[3].date", "error"}) as errors on the
        upload's own rows and columns."""
        details = data.get("details") if isinstance(data, dict) else None
        if not isinstance(details, list):
            return []
        columns = self.mapping.columns
        found = []
        for item in details[:100]:
            if not isinstance(item, dict):
                continue
            field, said = str(item.get("field", "")), str(item.get("error", ""))
            match = ENTRY_FIELD.match(field)
            if match:
                row = offset + int(match.group(1)) + 1
                found.append(error("vendor_refused_entry", said, row, columns.get(match.group(2), field)))
            else:
                found.append(error("vendor_refused_request", f"{field}: {said}" if field else said))
        return found
