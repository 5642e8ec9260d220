"""Reference 003's client side: ask the vendor for a URL (step 1), then PUT the file to it (step 2).

Step 1 is `POST <endpoint>` with `Auth-Api-Token: <vendor token>` and `{"filename": …}`; the
answer's `url` is where the file goes. Step 2 is a PUT of the stored file, streamed (the
engine's Body, never read whole) with its Content-Length and nothing else: no Auth-Api-Token
(the URL goes to another host, S3, and is its own credential), no Content-Type (a presigned URL
may have signed none). Both exchanges are in the call log, the URL's signature redacted.
"""

import json
from urllib.parse import parse_qsl, quote, urlsplit

from uploads.delivery.client import OutboundClient, OutboundRequest, Outcome, error, failure
from uploads.delivery.redaction import SECRET_QUERY_PARAMS


class FileUploadClient(OutboundClient):
    """Delivered on a 2xx answer to the PUT. An expired URL (403 on the PUT) gets one fresh step
    1 within the attempt; 429, 5xx and connection errors retry the whole sequence (the engine's
    backoff); any other refusal, such as 401 on step 1, fails for good."""

    delivered_statuses = range(200, 300)

    def step_one(self, upload):
        token = self.require("api_token", "vendor File Upload API token")
        body = json.dumps({"filename": upload.filename or f"upload-{upload.pk}"}, ensure_ascii=False).encode()
        return OutboundRequest("POST", self.integration.endpoint_url, body=body,
                               headers={"Auth-Api-Token": token, "Content-Type": "application/json",
                                        "Accept": "application/json"})

    def dry_run(self, upload, body):
        # Only step 1 can be shown: the URL of step 2 is the vendor's answer to it.
        return [self.step_one(upload)]

    def send(self, http, upload, body, progress):
        fresh_url_left = True
        while True:
            answer = http.exchange(self.step_one(upload))
            if answer.status_code not in self.delivered_statuses:
                return failure(answer, "The vendor refused to give a URL for the file")
            url, file_id = self.url_of(answer)
            if url is None:
                return Outcome(False, message="The vendor's answer to step 1 has no URL to send the file to.",
                               errors=[error("no_upload_url", answer.text[:500] or "(empty answer)")])
            self.forget_signature(http, url)
            put = http.exchange(OutboundRequest("PUT", url, headers={}, body=body))
            if put.status_code in self.delivered_statuses:
                said = f" as file {file_id}" if file_id is not None else ""
                return Outcome(True, message=f"Delivered{said}: the PUT was answered {put.status_code}.",
                               progress={"file_id": file_id})
            if put.status_code == 403 and fresh_url_left:
                fresh_url_left = False  # the URL expired before the file went: one fresh URL
                continue
            return failure(put, "The vendor refused the file")

    @staticmethod
    def url_of(answer):
        """(url, id) from `{"id": …, "url": "…"}`; a URL double-escaped by the vendor (a literal
        `\\u0026` left after JSON decoding, reference 003's warning) is put right."""
        data = answer.json()
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return None, None
        url = data["url"].strip().replace("\\u0026", "&").replace("\\/", "/")
        if urlsplit(url).scheme not in ("http", "https"):
            return None, None
        return url, data.get("id")

    @staticmethod
    def forget_signature(http, url):
        """The URL's signature is a credential: its values are redacted from everything logged,
        step 1's answer included (its row was written before the URL could be known)."""
        secrets = [value for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
                   if name.lower() in SECRET_QUERY_PARAMS and len(value) >= 4]
        if not secrets:
            return
        # As JSON may have written them too ("/" as "\/"); quoted forms are added by the redactor.
        http.redactor.add(*secrets, *(json.dumps(s)[1:-1] for s in secrets), *(quote(s, safe="") for s in secrets))
        if http.rows:
            row = http.rows[-1]
            row.response_excerpt = http.redactor.text(row.response_excerpt)
            row.save(update_fields=["response_excerpt"])
