"""A corpus of malformed requests to every inbound endpoint: each one is answered 4xx, in its
endpoint's own error shape, and stores nothing (no upload, value, account, entry, integration,
audit event or file).

Table-driven: a case is one row of CASES (an endpoint of ENDPOINTS, what is wrong with the
request, the status). Requests go through Django's test client, or, for what only a real
server sees (Content-Length that lies, chunked bodies, half-closed sockets, slow bodies), as
raw bytes over a socket to gunicorn as it is deployed (portal/serving.py). To cover a new
endpoint, add it to ENDPOINTS and give it rows; test_every_inbound_endpoint_has_cases says
which ones have none.
"""

import json
import os
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile

from integrations import registry, services
from integrations.models import ApiToken, Integration, Metric
from live_stack import gunicorn
from portal.models import AuditEvent
from uploads.intake import MAX_UPLOAD_BYTES
from uploads.models import Account, CallLog, Dispatch, MetricValue, Upload

GOOD_RECORD = {"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}
CSV_HEADER = "email,date,calls,talk_minutes,deals"
CSRF = "k" * 32  # an unmasked CSRF secret: the cookie and the form field agree


def records(**changes):
    """The seed's record with some fields changed (None drops the field), as a JSON list."""
    record = {**GOOD_RECORD, **changes}
    return json.dumps([{k: v for k, v in record.items() if v is not None}])


def csv_rows(*rows, header=CSV_HEADER):
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def import_body(**changes):
    entry = {"date": "2024-03-08 00:29:00", "name": "User 1", "content": "Feedback 1"}
    document = {"source_id": "src-1", "payload": [entry]}
    for name, value in changes.items():
        if name.startswith("entry_"):
            entry[name[6:]] = value
        else:
            document[name] = value
    return json.dumps(document)


def nested(depth, opener="[", closer="]"):
    return opener * depth + closer * depth


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str
    body: object = b""  # bytes or str; for "query" endpoints, the query string
    status: int = 400
    content_type: str = None  # None: the endpoint's own
    filename: str = "upload.json"
    via: str = "client"  # or "socket": raw bytes to gunicorn
    head: dict = field(default_factory=dict)  # socket: headers to set (None removes one)
    frame: bytes = None  # socket: the bytes sent after the headers, as they are (default: the body)
    half_close: bool = True  # socket: shut down our side once everything is sent
    shape: str = None  # None: the endpoint's; "server": gunicorn refuses it before the application
    xfail: str = ""  # a known gap, with where its fix belongs

    def __str__(self):
        return f"{self.endpoint}:{self.name}"


# Each endpoint: method, path, how the request carries the body, the default content type, the
# credential, and the shape of its errors.
ENDPOINTS = {
    "data_json": dict(method="POST", path="/api/v1/data/calls/", carry="raw", content_type="application/json",
                      auth="calls_token", shape="data", url_name="data_upload"),
    "data_csv": dict(method="POST", path="/api/v1/data/activity/", carry="raw", content_type="text/csv",
                     auth="activity_token", shape="data", url_name="data_upload"),
    "import": dict(method="POST", path="/api/v1/source/import", carry="raw", content_type="application/json",
                   auth="import_key", shape="import", url_name="source_import"),
    "api_create": dict(method="POST", path="/api/v3/integrations/", carry="raw", content_type="application/json",
                       auth="api_token", shape="api", url_name="api-integration-list"),
    "api_patch": dict(method="PATCH", path="/api/v3/integrations/{calls}/", carry="raw",
                      content_type="application/json", auth="api_token", shape="api",
                      url_name="api-integration-detail"),
    "api_uploads": dict(method="GET", path="/api/v3/uploads/", carry="query", auth="api_token", shape="api",
                        url_name="api-upload-list"),
    "api_values": dict(method="GET", path="/api/v3/metric-values/", carry="query", auth="api_token", shape="api",
                       url_name="api-metric-values"),
    "api_file": dict(method="POST", path="/api/v3/integrations/{calls}/uploads/", carry="file",
                     content_type="application/json", auth="api_token", shape="api",
                     url_name="api-integration-uploads"),
    "form_file": dict(method="POST", path="/t/acme/uploads/new/", carry="file", content_type="application/json",
                      auth="session", shape="form", url_name="upload_create"),
    # Reference 002 and 003: what an unauthenticated client can send (their own tests go further).
    "upload_api_token": dict(method="POST", path="/api/upload-api/token", carry="raw",
                             content_type="application/x-www-form-urlencoded", auth=None, shape="oauth",
                             url_name="upload_api_token"),
    "upload_api_data": dict(method="POST", path="/api/upload-api/UploadData", carry="raw",
                            content_type="application/json", auth=None, shape="upload_api",
                            url_name="upload_api_upload_data"),
    "file_upload": dict(method="POST", path="/api/v1/file-upload/", carry="raw", content_type="application/json",
                        auth=None, shape="data", url_name="file_upload_request"),
}

HUGE = 5000  # digits
DEEP = 10_000  # levels

CASES = [
    # --- seed 000, JSON: encodings, structure, nesting ---------------------------------------
    Case("empty body", "data_json", b""),
    Case("whitespace only", "data_json", b"  \n\t "),
    Case("empty list", "data_json", "[]"),
    Case("null", "data_json", "null"),
    Case("a string", "data_json", '"records"'),
    Case("a number", "data_json", "123"),
    Case("list of numbers", "data_json", "[1, 2]"),
    Case("a record and a string", "data_json", f'[{json.dumps(GOOD_RECORD)}, "x"]'),
    Case("truncated document", "data_json", records()[:-5]),
    Case("trailing garbage", "data_json", records() + "x"),
    Case("single quotes", "data_json", records().replace('"', "'")),
    Case("trailing comma", "data_json", records()[:-2] + ",}]"),
    Case("comments", "data_json", "// records\n" + records()),
    Case("lists nested 10,000 levels", "data_json", nested(DEEP)),
    Case("objects nested 10,000 levels", "data_json", '{"a":' * DEEP + "1" + "}" * DEEP),
    Case("a value nested 10,000 levels", "data_json", records(calls="X").replace('"X"', nested(DEEP))),
    Case("UTF-16 with BOM", "data_json", records().encode("utf-16")),
    Case("UTF-16 without BOM", "data_json", records().encode("utf-16-le")),
    Case("UTF-32 with BOM", "data_json", records().encode("utf-32")),
    Case("Latin-1 bytes", "data_json", records(email="josé@x.com").replace("\\u00e9", "é").encode("latin-1")),
    Case("invalid UTF-8 sequence", "data_json", records().encode().replace(b"jason", b"ja\xc3\x28son")),
    Case("record without a user", "data_json", records(email=None)),
    Case("record without a date", "data_json", records(date=None)),
    Case("record without the metric", "data_json", records(calls=None)),
    Case("empty object", "data_json", "[{}]"),
    # --- users ---------------------------------------------------------------------------------
    Case("user null", "data_json", records(email=None) .replace("{", '{"email": null, ', 1)),
    Case("user empty", "data_json", records(email="")),
    Case("user not an email", "data_json", records(email="jason")),
    Case("user is a number", "data_json", records(email=12345)),
    Case("user holds NUL", "data_json", records(email="ja\u0000son@x.com")),
    Case("user holds a bell", "data_json", records(email="ja\u0007son@x.com")),
    Case("user holds a lone surrogate", "data_json", records(email="X").replace('"X"', '"ja\\ud800son@x.com"')),
    Case("user of 255 characters", "data_json", records(email="a" * 249 + "@x.com")),
    Case("user of 300 characters", "data_json", records(email="a" * 294 + "@x.com")),
    Case("user of 5,000 digits", "data_json", records(email="X").replace('"X"', "9" * HUGE)),
    Case("user is a formula", "data_json", records(email='=HYPERLINK("http://evil.example")')),
    # --- numbers ---------------------------------------------------------------------------------
    Case("metric of 400 digits", "data_json", records(calls="X").replace('"X"', "9" * 400)),
    Case("metric of 5,000 digits", "data_json", records(calls="X").replace('"X"', "9" * HUGE)),
    Case("metric of -5,000 digits", "data_json", records(calls="X").replace('"X"', "-" + "9" * HUGE)),
    Case("metric 1e400", "data_json", records(calls="X").replace('"X"', "1e400")),
    Case("metric NaN", "data_json", records(calls="X").replace('"X"', "NaN")),
    Case("metric Infinity", "data_json", records(calls="X").replace('"X"', "Infinity")),
    Case("metric -Infinity", "data_json", records(calls="X").replace('"X"', "-Infinity")),
    Case("metric as text", "data_json", records(calls="three")),
    Case("metric with a decimal comma", "data_json", records(calls="3,5")),
    Case("metric in hexadecimal", "data_json", records(calls="0x1F")),
    Case("metric '1e999'", "data_json", records(calls="1e999")),
    Case("metric true", "data_json", records(calls=True)),
    Case("metric a list", "data_json", records(calls=[1, 2])),
    Case("metric an object", "data_json", records(calls={"value": 1})),
    Case("metric a formula", "data_json", records(calls="=1+2")),
    Case("metric '@SUM(1+1)'", "data_json", records(calls="@SUM(1+1)*cmd|' /C calc'!A0")),
    # --- dates -----------------------------------------------------------------------------------
    Case("date in another format", "data_json", records(date="2016-08-16")),
    Case("date 13/45/2016", "data_json", records(date="13/45/2016")),
    Case("date 2/30/2016", "data_json", records(date="2/30/2016")),
    Case("date empty", "data_json", records(date="")),
    Case("date a number", "data_json", records(date=20160816)),
    Case("date in year 99999", "data_json", records(date="1/1/99999")),
    Case("date a formula", "data_json", records(date="=TODAY()")),
    Case("date with a time", "data_json", records(date="8/16/2016 10:00")),
    # --- headers -------------------------------------------------------------------------------
    Case("no content type", "data_json", records(), content_type=""),
    Case("CSV content type", "data_json", records(), content_type="text/csv"),
    Case("XML content type", "data_json", records(), content_type="application/xml"),
    Case("form content type", "data_json", records(), content_type="application/x-www-form-urlencoded"),
    Case("no token", "data_json", records(), status=401, head={"Authorization": None}),
    Case("a wrong token", "data_json", records(), status=401, head={"Authorization": "Token nope"}),
    Case("a Bearer token", "data_json", records(), status=401, head={"Authorization": "Bearer x"}),
    Case("over 15 MB", "data_json", b"[" + b" " * MAX_UPLOAD_BYTES + b"]", status=413),
    Case("101 bad records", "data_json", json.dumps([{**GOOD_RECORD, "calls": "x"}] * 101)),
    # --- seed 000, CSV ---------------------------------------------------------------------------
    Case("empty body", "data_csv", b""),
    Case("header only", "data_csv", csv_rows()),
    Case("blank lines only", "data_csv", b"\n\n\n"),
    Case("header repeats a key after trimming", "data_csv",
         csv_rows("a@x.com,8/16/2016,1,2,3,4", header="email,date,calls, calls,talk_minutes,deals")),
    Case("header repeats a key", "data_csv",
         csv_rows("a@x.com,8/16/2016,1,2,3,4", header="email,date,calls,calls,talk_minutes,deals")),
    Case("header lacks a key", "data_csv", csv_rows("a@x.com,8/16/2016,1,2", header="email,date,calls,deals")),
    Case("semicolons", "data_csv", csv_rows("a@x.com;8/16/2016;1;2;3", header=CSV_HEADER.replace(",", ";"))),
    Case("a row with extra fields", "data_csv", csv_rows("a@x.com,8/16/2016,1,2,3,4,5")),
    Case("an unterminated quote", "data_csv", csv_rows('"a@x.com,8/16/2016,1,2,3')),
    Case("a stray quote", "data_csv", csv_rows('a@x.com,8/16/2016,"1"x,2,3')),
    Case("NUL byte in a user", "data_csv", csv_rows("ja\x00son@x.com,8/16/2016,1,2,3")),
    Case("NUL byte in a number", "data_csv", csv_rows("a@x.com,8/16/2016,1\x002,2,3")),
    Case("bytes no code page reads", "data_csv", csv_rows("a\x81\x8d\x8f@x.com,8/16/2016,1,2,3").replace(
        b"\xc2", b"")),
    Case("UTF-16 with BOM", "data_csv", csv_rows("a@x.com,8/16/2016,1,2,3").decode().encode("utf-16")),
    Case("user of 300 characters", "data_csv", csv_rows("a" * 294 + "@x.com,8/16/2016,1,2,3")),
    Case("formula in a number", "data_csv", csv_rows("a@x.com,8/16/2016,=1+2,2,3")),
    Case("tab and formula in a number", "data_csv", csv_rows('a@x.com,8/16/2016,"\t=1+2",2,3')),
    Case("CR and formula in a number", "data_csv", csv_rows('a@x.com,8/16/2016,"\r=1+2",2,3')),
    Case("formula in a date", "data_csv", csv_rows("a@x.com,=TODAY(),1,2,3")),
    Case("formula as the user", "data_csv", csv_rows('"=HYPERLINK(""http://evil.example"")",8/16/2016,1,2,3')),
    Case("number of 5,000 digits", "data_csv", csv_rows(f"a@x.com,8/16/2016,{'9' * HUGE},2,3")),
    Case("number with a decimal comma", "data_csv", csv_rows('a@x.com,8/16/2016,"1,5",2,3')),
    Case("date in another format", "data_csv", csv_rows("a@x.com,2016-08-16,1,2,3")),
    Case("JSON content type", "data_csv", csv_rows("a@x.com,8/16/2016,1,2,3"), content_type="application/json"),
    # --- reference 004, the import endpoint ------------------------------------------------------
    Case("empty body", "import", b""),
    Case("not JSON", "import", b"source_id=src-1"),
    Case("a list", "import", "[]"),
    Case("nested 10,000 levels", "import", nested(DEEP)),
    Case("UTF-8 then garbage", "import", import_body() + "}"),
    Case("no source_id", "import", import_body(source_id=None).replace('"source_id": null, ', "")),
    Case("another source_id", "import", import_body(source_id="src-2")),
    Case("source_id a number", "import", import_body(source_id=1)),
    Case("source_id of 5,000 digits", "import", import_body(source_id="X").replace('"X"', "9" * HUGE)),
    Case("no payload", "import", json.dumps({"source_id": "src-1"})),
    Case("payload an object", "import", import_body(payload={})),
    Case("payload empty", "import", import_body(payload=[])),
    Case("an entry not an object", "import", import_body(payload=["x"])),
    Case("an entry without a date", "import", import_body(entry_date=None).replace('"date": null, ', "")),
    Case("date without seconds", "import", import_body(entry_date="2024-03-08 00:29")),
    Case("date February 30", "import", import_body(entry_date="2024-02-30 00:29:00")),
    Case("name a number", "import", import_body(entry_name=5)),
    Case("name of 201 characters", "import", import_body(entry_name="n" * 201)),
    Case("content of 10,001 characters", "import", import_body(entry_content="c" * 10_001)),
    Case("CSV content type", "import", import_body(), content_type="text/csv"),
    Case("no API key", "import", import_body(), status=401, head={"X-API-KEY": None}),
    Case("a wrong API key", "import", import_body(), status=401, head={"X-API-KEY": "nope"}),
    Case("over 15 MB", "import", b"{" + b" " * MAX_UPLOAD_BYTES + b"}", status=413),
    Case("name holds NUL", "import", import_body(entry_name="User\u00001")),
    Case("content holds a lone surrogate", "import", import_body(entry_content="X").replace(
        '"X"', '"Feedback \\udc00"')),
    # --- the REST API ------------------------------------------------------------------------------
    Case("nested 10,000 levels", "api_create", nested(DEEP, "{\"a\":", "}").replace('{"a":}', "{}")),
    Case("lists nested 10,000 levels", "api_create", nested(DEEP)),
    Case("not JSON", "api_create", b"name=x"),
    Case("a list", "api_create", "[]"),
    Case("text/plain", "api_create", '{"name": "x"}', status=415, content_type="text/plain"),
    Case("name holds NUL", "api_create", json.dumps({"name": "a\u0000b", "data_type": "nul"})),
    Case("name holds a lone surrogate", "api_create", '{"name": "a\\ud800b", "data_type": "surrogate"}'),
    Case("name of 10,000 characters", "api_create", json.dumps({"name": "n" * 10_000, "data_type": "long"})),
    Case("data_type holds NUL", "api_create", json.dumps({"name": "x", "data_type": "a\u0000b"})),
    Case("max_attempts of 5,000 digits", "api_create", '{"name": "x", "max_attempts": %s}' % ("9" * HUGE)),
    Case("max_attempts of 400 digits", "api_create", '{"name": "x", "max_attempts": %s}' % ("9" * 400)),
    Case("a metric without a source key", "api_create",
         json.dumps({"name": "x", "data_type": "m", "field_keys": ["email", "date", "calls"],
                     "metrics": [{"name": "calls", "aggregation": "sum"}]})),
    Case("a metric of an unknown aggregation", "api_create",
         json.dumps({"name": "x", "data_type": "m", "field_keys": ["email", "date", "calls"],
                     "metrics": [{"name": "calls", "source_key": "calls", "aggregation": "median"}]})),
    Case("an unknown protocol", "api_create", json.dumps({"name": "x", "protocol": "ftp"})),
    Case("an unknown direction", "api_create", json.dumps({"name": "x", "data_type": "d", "direction": "up"})),
    Case("credentials a string", "api_create", json.dumps({"name": "x", "direction": "outbound",
                                                            "credentials": "secret"})),
    Case("read-only token", "api_create", json.dumps({"name": "x", "data_type": "ro"}), status=403,
         head={"Authorization": "read_only_token"}),
    Case("a metric without aggregation", "api_patch", json.dumps({"metrics": [{"name": "c", "source_key": "calls"}]})),
    Case("protocol changed", "api_patch", json.dumps({"protocol": "source_import"})),
    Case("sandbox 'maybe'", "api_patch", json.dumps({"sandbox": "maybe"})),
    Case("nested 10,000 levels", "api_patch", nested(DEEP)),
    Case("status holds NUL", "api_uploads", "status=a%00b"),
    Case("status unknown", "api_uploads", "status=lost"),
    Case("direction unknown", "api_uploads", "direction=sideways"),
    Case("data_type holds NUL", "api_uploads", "data_type=a%00b"),
    Case("limit of 20 digits", "api_uploads", "limit=99999999999999999999"),
    Case("limit text", "api_uploads", "limit=ten"),
    Case("limit 0", "api_uploads", "limit=0"),
    Case("offset -1", "api_uploads", "offset=-1"),
    Case("offset of 20 digits", "api_uploads", "offset=99999999999999999999"),
    Case("email holds NUL", "api_values", "email=a%00b"),
    Case("date_from not a date", "api_values", "date_from=2016-13-45"),
    Case("date_to empty", "api_values", "date_to="),
    Case("dates the wrong way round", "api_values", "date_from=2020-01-02&date_to=2020-01-01"),
    Case("status empty", "api_uploads", "status="),
    Case("limit of 20 digits", "api_values", "limit=99999999999999999999"),
    Case("no file", "api_file", None),
    Case("nested 10,000 levels", "api_file", nested(DEEP)),
    Case("user holds NUL", "api_file", records(email="ja\u0000son@x.com")),
    Case("UTF-16", "api_file", records().encode("utf-16")),
    Case("300-character name and bad JSON", "api_file", "[", filename="a" * 295 + ".json"),
    # --- the web form ------------------------------------------------------------------------------
    Case("nested 10,000 levels", "form_file", nested(DEEP)),
    Case("user holds NUL", "form_file", records(email="ja\u0000son@x.com")),
    Case("user holds a lone surrogate", "form_file", records(email="X").replace('"X"', '"a\\ud800@x.com"')),
    Case("metric of 5,000 digits", "form_file", records(calls="X").replace('"X"', "9" * HUGE)),
    Case("UTF-32", "form_file", records().encode("utf-32")),
    Case("300-character name and bad JSON", "form_file", "[", filename="a" * 295 + ".json"),
    Case("300-character CJK name and bad JSON", "form_file", "[", filename="漢" * 300 + ".json"),
    Case("long extension, large file and bad JSON", "form_file", b"[" + b" " * 3_000_000,
         filename="x." + "a" * 298),
    Case("over 15 MB", "form_file", b"[" + b" " * MAX_UPLOAD_BYTES + b"]", status=413),
    # --- references 002 and 003, before any credential ------------------------------------------
    Case("no grant", "upload_api_token", b""),
    Case("nested 10,000 levels", "upload_api_token", nested(DEEP), content_type="application/json"),
    Case("an unknown client", "upload_api_token", b"grant_type=client_credentials", status=401,
         head={"Authorization": "Basic Zm9vOmJhcg=="}),
    Case("no bearer token", "upload_api_data", "{}", status=401),
    Case("an unknown bearer token, nested 10,000 levels", "upload_api_data", nested(DEEP), status=401,
         head={"Authorization": "Bearer nope"}),
    Case("an unknown bearer token, a number of 5,000 digits", "upload_api_data", "9" * HUGE, status=401,
         head={"Authorization": "Bearer nope"}),
    Case("no token", "file_upload", "{}", status=401),
    Case("a wrong token, nested 10,000 levels", "file_upload", nested(DEEP), status=401,
         head={"Auth-Api-Token": "nope"}),
    Case("a wrong token, not JSON", "file_upload", b"\xff\xfe", status=401, head={"Auth-Api-Token": "nope"}),
    # --- over a socket: lies in Content-Length, chunking (gunicorn) -------------------------------
    Case("Content-Length 1399, 756 bytes, half-closed", "data_json", b"x" * 756, via="socket",
         head={"Content-Length": "1399"}),
    Case("Content-Length 1000, 10 bytes, half-closed", "data_json", records()[:10], via="socket",
         head={"Content-Length": "1000"}),
    Case("Content-Length 1000, nothing sent", "data_json", b"", via="socket", head={"Content-Length": "1000"}),
    Case("Content-Length too small", "data_json", records(), via="socket", head={"Content-Length": "10"},
         half_close=False),
    Case("Content-Length not a number", "data_json", records(), via="socket", head={"Content-Length": "ten"},
         shape="server"),
    Case("Content-Length negative", "data_json", records(), via="socket", head={"Content-Length": "-5"},
         shape="server"),
    Case("Content-Length and chunked", "data_json", records(), via="socket",
         head={"Transfer-Encoding": "chunked"}, shape="server"),
    Case("a bad chunk size", "data_json", via="socket", head={"Transfer-Encoding": "chunked", "Content-Length": None},
         frame=b"zz\r\n[]\r\n0\r\n\r\n"),
    Case("a chunk longer than it says", "data_json", via="socket",
         head={"Transfer-Encoding": "chunked", "Content-Length": None}, frame=b"2\r\n[{}]\r\n0\r\n\r\n"),
    Case("chunks that stop half-way", "data_json", via="socket",
         head={"Transfer-Encoding": "chunked", "Content-Length": None}, frame=b"40\r\n[{\"email\""),
    Case("chunked and malformed", "data_json", via="socket",
         head={"Transfer-Encoding": "chunked", "Content-Length": None}, frame=b"1\r\n[\r\n0\r\n\r\n"),
    Case("Content-Length 1000, 10 bytes, half-closed", "data_csv", csv_rows()[:10], via="socket",
         head={"Content-Length": "1000"}),
    Case("Content-Length 1399, 756 bytes, half-closed", "import", b" " * 756, via="socket",
         head={"Content-Length": "1399"}),
    Case("a bad chunk size", "import", via="socket", head={"Transfer-Encoding": "chunked", "Content-Length": None},
         frame=b"zz\r\n{}\r\n0\r\n\r\n"),
    Case("Content-Length 5000, half the file, half-closed", "api_file", records(), via="socket",
         head={"Content-Length": "5000"}),
    Case("Content-Length 5000, half the file, half-closed", "form_file", records(), via="socket",
         head={"Content-Length": "5000"}),
]


# --- What a test needs: credentials, counts, shapes --------------------------------------------


@pytest.fixture
def world(tenant, owner, calls_integration, activity_integration, client):
    source = services.create_integration(tenant, owner, name="Feedback", protocol="source_import",
                                         source_id="src-1")
    _, api_token = services.issue_api_token(tenant, owner, "corpus", ApiToken.Scope.READ_WRITE)
    _, read_only = services.issue_api_token(tenant, owner, "corpus-ro", ApiToken.Scope.READ)
    client.force_login(owner)
    return {
        "calls": calls_integration.pk,
        "calls_token": services.regenerate_integration_token(calls_integration, owner),
        "activity_token": services.regenerate_integration_token(activity_integration, owner),
        "import_key": services.regenerate_integration_token(source, owner),
        "api_token": api_token, "read_only_token": read_only,
        "session": client.cookies["sessionid"].value,
    }


STORED = [Upload, MetricValue, Account, Integration, Metric, Dispatch, CallLog, AuditEvent]


def feedback_entries():
    return apps.get_model("source_import", "FeedbackEntry")


def snapshot(media_root):
    counts = {model.__name__: model.objects.count() for model in [*STORED, feedback_entries()]}
    files = sorted(os.path.join(d, f) for d, _, names in os.walk(media_root) for f in names) \
        if os.path.exists(media_root) else []
    return counts, files


def headers_for(case, world):
    endpoint = ENDPOINTS[case.endpoint]
    headers = {}
    auth = endpoint["auth"]
    if auth in ("calls_token", "activity_token", "api_token"):
        headers["Authorization"] = f"Token {world[auth]}"
    elif auth == "import_key":
        headers["X-API-KEY"] = world[auth]
    for name, value in case.head.items():
        if name == "Authorization" and value in world:
            value = f"Token {world[value]}"
        headers[name] = value
    return {name: value for name, value in headers.items() if value is not None}


def path_for(case, world):
    path = ENDPOINTS[case.endpoint]["path"].format(calls=world["calls"])
    if ENDPOINTS[case.endpoint]["carry"] == "query":
        path += "?" + case.body
    return path


def body_bytes(case):
    return case.body.encode() if isinstance(case.body, str) else (case.body or b"")


def assert_shape(case, status, content_type, content):
    shape = case.shape or ENDPOINTS[case.endpoint]["shape"]
    if shape == "server":
        return  # refused by gunicorn before any application code runs: its own short page
    if shape == "form":
        assert content_type.startswith("text/html"), content_type
        page = content.decode()
        assert "<form" in page or "Bad Request (400)" in page, page[:500]  # the form again, or Django's 400
        return
    assert content_type.startswith("application/json"), (content_type, content[:300])
    document = json.loads(content)
    assert isinstance(document, dict) and document, document
    if shape == "data":
        errors = document["errors"]
        assert errors and len(errors) <= 100
        assert all(set(e) == {"id", "description", "row", "column"} and e["description"] for e in errors), errors
    elif shape == "import":
        assert isinstance(document["message"], str) and document["message"]
        assert all(set(d) == {"field", "error"} for d in document.get("details", [])), document
    elif shape == "oauth":
        assert isinstance(document["error"], str) and document["error"]
    elif shape == "upload_api":
        errors = document["errors"]
        assert errors and all(set(e) == {"id", "field", "description"} and e["description"] for e in errors), errors
    elif shape == "api":
        detail = document.get("detail") or document.get("errors") or next(iter(document.values()))
        assert detail, document


# --- Through Django's test client ----------------------------------------------------------------


def send_with_client(client, case, world):
    endpoint = ENDPOINTS[case.endpoint]
    headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers_for(case, world).items()}
    path = path_for(case, world)
    content_type = endpoint.get("content_type") if case.content_type is None else case.content_type
    if endpoint["carry"] == "query":
        return client.get(path, **headers)
    if endpoint["carry"] == "file":
        data = {"integration": world["calls"]} if endpoint["shape"] == "form" else {}
        if case.body is not None:
            data["file"] = SimpleUploadedFile(case.filename, body_bytes(case), content_type=content_type)
        return client.post(path, data, **headers)
    return client.generic(endpoint["method"], path, body_bytes(case), content_type=content_type, **headers)


CLIENT_CASES = [case for case in CASES if case.via == "client"]
SOCKET_CASES = [case for case in CASES if case.via == "socket"]


def marks(case):
    return [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []


@pytest.mark.django_db
@pytest.mark.parametrize("case", [pytest.param(c, id=str(c), marks=marks(c)) for c in CLIENT_CASES])
def test_a_malformed_request_is_refused_and_stores_nothing(case, client, world, settings):
    client.raise_request_exception = False  # a 500 is an answer to assert on, not an exception
    before = snapshot(settings.MEDIA_ROOT)
    response = send_with_client(client, case, world)
    assert response.status_code == case.status, response.content[:500]
    assert_shape(case, response.status_code, response.get("Content-Type", ""), response.content)
    assert snapshot(settings.MEDIA_ROOT) == before


# --- Over a socket, to gunicorn as deployed ------------------------------------------------------


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    return tmp_path_factory.mktemp("served-media")


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory, media_root):
    with django_db_blocker.unblock():
        with gunicorn(tmp_path_factory.mktemp("gunicorn"), media_root,
                      env={"PORTAL_BODY_GRACE_SECONDS": "2", "WEB_THREADS": "4"}) as running:
            yield running


def request_bytes(case, world, port):
    endpoint = ENDPOINTS[case.endpoint]
    body = body_bytes(case)
    content_type = endpoint.get("content_type") if case.content_type is None else case.content_type
    headers = {"Host": f"127.0.0.1:{port}", "Content-Type": content_type, **headers_for(case, world)}
    if endpoint["carry"] == "file":
        boundary = "corpusboundary"
        fields = []
        if endpoint["shape"] == "form":
            headers["Cookie"] = f"sessionid={world['session']}; csrftoken={CSRF}"
            fields = [("csrfmiddlewaretoken", CSRF), ("integration", str(world["calls"]))]
        parts = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                         for name, value in fields)
        parts += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{case.filename}"\r\n'
                  f"Content-Type: {content_type}\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
        body, headers["Content-Type"] = parts, f"multipart/form-data; boundary={boundary}"
        if headers.get("Content-Length") == "5000":
            body = body[: len(body) // 2]  # the client stops half-way
    headers.setdefault("Content-Length", str(len(body)))
    for name, value in case.head.items():
        if value is None:
            headers.pop(name, None)
    head = f"{endpoint['method']} {path_for(case, world)} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    return head.encode() + (case.frame if case.frame is not None else body)


def server_errors(log):
    """Lines of a gunicorn log that tell of a server error: a 5xx in the access log, or Django's."""
    return [line for line in log.splitlines()
            if re.search(r'HTTP/1\.[01]" 5\d\d ', line) or "Internal Server Error" in line]


def exchange(port, data, half_close=True, timeout=30):
    """Send raw bytes, read the first answer: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < _expected_length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body[: int(headers.get("content-length", len(body)))]


def _expected_length(answer):
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("content-length:"):
            return len(head) + 4 + int(line.split(":", 1)[1])
    return 1 << 62  # read to the end


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", [pytest.param(c, id=str(c), marks=marks(c)) for c in SOCKET_CASES])
def test_a_malformed_request_over_a_socket_is_refused_and_stores_nothing(case, server, world, media_root):
    before = snapshot(media_root)
    status, headers, body = exchange(server.port, request_bytes(case, world, server.port), case.half_close)
    assert status == case.status, (body[:500], server.log[-2000:])
    assert_shape(case, status, headers.get("content-type", ""), body)
    assert snapshot(media_root) == before
    assert server_errors(server.log) == []


# --- Slow bodies -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_body_that_stops_arriving_is_answered_408_in_time(server, world):
    """Content-Length 1000, ten bytes, then nothing (the socket stays open): refused after the
    grace period (2 s on this server), in the endpoint's shape; nothing stored."""
    case = Case("slow", "data_json", records()[:10], head={"Content-Length": "1000"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(request_bytes(case, world, server.port))
        answer = b""
        while chunk := sock.recv(65536):  # the answer, then the server hangs up
            answer += chunk
        took = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(body)["errors"][0]["id"] == "request_timeout", body
    assert 1.5 < took < 5, took
    assert Upload.objects.count() == 0


def slow_login(port, hold):
    """POST /login/ announcing 1,000 bytes, sending ten, then waiting: what an attacker does."""
    with socket.create_connection(("127.0.0.1", port), timeout=hold + 30) as sock:
        sock.sendall("POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded"
                     "\r\nContent-Length: 1000\r\n\r\nusername=a".encode())
        answer = sock.recv(65536)
    return int(answer.split()[1]) if answer else None


@pytest.mark.django_db(transaction=True)
def test_slow_clients_do_not_starve_the_server(server, world):
    """Twelve slow clients against a worker of four threads (this server's): each is cut off at
    the deadline, so the other requests are served within a few seconds, not never."""
    with ThreadPoolExecutor(max_workers=12) as attackers:
        slow = [attackers.submit(slow_login, server.port, 10) for _ in range(12)]
        time.sleep(0.5)  # let them take every thread
        started = time.monotonic()
        answers = [requests.get(f"{server.url}/login/", timeout=30).status_code for _ in range(5)]
        took = time.monotonic() - started
        refused = [future.result() for future in slow]
    assert answers == [200] * 5
    assert took < 8, took  # 12 slow bodies over 4 threads: three rounds of the 2 s grace at most
    assert set(refused) <= {400, 403, 408}, refused  # a 4xx, never a 5xx
    assert server_errors(server.log) == []


# --- The corpus itself -----------------------------------------------------------------------------


def test_the_corpus_is_large_and_covers_every_endpoint():
    assert len(CASES) >= 100, len(CASES)
    assert len({str(case) for case in CASES}) == len(CASES), "two cases share a name"
    by_endpoint = {name: sum(1 for case in CASES if case.endpoint == name) for name in ENDPOINTS}
    assert all(count >= 3 for count in by_endpoint.values()), by_endpoint
    assert sum(1 for case in CASES if case.via == "socket") >= 10


def _view_class(pattern):
    callback = pattern.callback
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def _takes_a_body(view_class, callback):
    actions = getattr(callback, "actions", None)  # a viewset's routes: {"post": "create", …}
    methods = set(actions) if actions else {m for m in ("post", "put", "patch") if hasattr(view_class, m)}
    return bool(methods & {"post", "put", "patch"})


def test_every_inbound_endpoint_has_cases():
    """Every endpoint of a protocol that takes a body (its machine endpoints under /api/, its REST
    endpoints under /api/v3/) has rows in the corpus, under one of its spellings."""
    patterns = [pattern for protocol in registry.all_protocols()
                for pattern in [*protocol.urlpatterns(), *protocol.api_urlpatterns()]]
    names = {endpoint["url_name"] for endpoint in ENDPOINTS.values()}
    covered = {_view_class(pattern) for pattern in patterns if pattern.name in names}
    missing = sorted(pattern.name or str(pattern.pattern) for pattern in patterns
                     if _view_class(pattern) is not None and _view_class(pattern) not in covered
                     and _takes_a_body(_view_class(pattern), pattern.callback))
    assert missing == [], "endpoints without malformed-request cases"
