"""Seed 000's receiving end, POST /api/v1/data/<data_type>/, through the test client and a live server."""

import io
import json
import os

import pytest
import requests

from integrations import services
from integrations.models import Integration
from uploads.intake import MAX_UPLOAD_BYTES
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db

SEED_EXAMPLE = '[{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]'


@pytest.fixture
def calls_token(calls_integration, owner):
    return services.regenerate_integration_token(calls_integration, owner)


@pytest.fixture
def activity_token(activity_integration, owner):
    return services.regenerate_integration_token(activity_integration, owner)


def post(client, data_type, body, content_type, token, slash=True, **extra):
    url = f"/api/v1/data/{data_type}/" if slash else f"/api/v1/data/{data_type}"
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    return client.post(url, data=body, content_type=content_type, **headers, **extra)


def stored_files(settings):
    root = settings.MEDIA_ROOT
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files] if os.path.exists(root) else []


def assert_nothing_stored(settings):
    assert Upload.objects.count() == 0
    assert Account.objects.count() == 0
    assert MetricValue.objects.count() == 0
    assert stored_files(settings) == []


def csv_body(rows, header="email,date,calls,talk_minutes,deals"):
    return (header + "\n" + "\n".join(rows) + "\n").encode()


# --- The seed's own example -----------------------------------------------------------------


def test_seed_curl_example_answers_201_and_is_processed(client, calls_token, calls_integration,
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "calls", SEED_EXAMPLE, "application/json", calls_token)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["records"] == 1 and body["status"] == "queued" and isinstance(body["id"], int)
    upload = Upload.objects.get(pk=body["id"])
    assert upload.status == "processed" and upload.values_written == 1
    assert upload.channel == "api" and upload.submitted_via.startswith("AUTH_TOKEN ")
    assert calls_token not in upload.submitted_via
    value = MetricValue.objects.get()
    assert (value.account.email, str(value.date), value.value) == ("jason@yourcompany.com", "2016-08-16", 3.0)


def test_seed_curl_example_through_a_real_http_server(live_server, calls_token, calls_integration):
    """As curl sends it: a real socket, a real Content-Length, the string "3"."""
    response = requests.post(
        f"{live_server.url}/api/v1/data/calls/", data=SEED_EXAMPLE,
        headers={"Authorization": f"Token {calls_token}", "Content-Type": "application/json"}, timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["records"] == 1
    assert MetricValue.objects.get().value == 3.0


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8", "application/vnd.ms-excel",
                                          "application/vns.ms-excel"])
def test_csv_content_types(client, activity_token, content_type):
    body = csv_body(["ann@x.com,8/16/2016,3,10.5,1", "bob@x.com,8/16/2016,4,2,0"])
    response = post(client, "activity", body, content_type, activity_token)
    assert response.status_code == 201, response.content
    assert response.json()["records"] == 2


# --- Authentication and the URL ----------------------------------------------------------------


def test_missing_token_is_401_json(client, calls_integration):
    response = post(client, "calls", SEED_EXAMPLE, "application/json", None)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["errors"][0]["id"] == "authentication_failed"
    assert Upload.objects.count() == 0


def test_wrong_token_is_401_json(client, calls_token):
    response = post(client, "calls", SEED_EXAMPLE, "application/json", calls_token[:-2] + "xx")
    assert response.status_code == 401
    assert "Invalid or revoked" in response.json()["errors"][0]["description"]


def test_revoked_token_is_401(client, calls_integration, calls_token, owner):
    services.regenerate_integration_token(calls_integration, owner)
    assert post(client, "calls", SEED_EXAMPLE, "application/json", calls_token).status_code == 401


def test_another_tenants_token_is_refused_without_revealing(client, calls_integration, other_tenant, outsider):
    theirs = services.create_integration(other_tenant, outsider, name="Their calls", data_type="calls",
                                         data_format="json", field_keys=["email", "date", "calls"])
    their_token = services.regenerate_integration_token(theirs, outsider)
    # Their token on "our" data type lands in their own integration (same data type) …
    assert post(client, "calls", SEED_EXAMPLE, "application/json", their_token).status_code == 201
    assert Upload.objects.get().tenant == other_tenant
    # … and on a data type only we have, the answer is the same as for one nobody has.
    services.create_integration(calls_integration.tenant, None, name="Deals", data_type="deals", data_format="json")
    ours = post(client, "deals", SEED_EXAMPLE, "application/json", their_token)
    nobody = post(client, "nothing-here", SEED_EXAMPLE, "application/json", their_token)
    assert ours.status_code == nobody.status_code == 404
    assert ours.json()["errors"][0]["id"] == nobody.json()["errors"][0]["id"] == "unknown_data_type"
    assert Upload.objects.filter(tenant=calls_integration.tenant).count() == 0


def test_token_of_another_data_type_is_404(client, calls_token, activity_integration):
    response = post(client, "activity", b"email,date\n", "text/csv", calls_token)
    assert response.status_code == 404
    assert Upload.objects.count() == 0


def test_missing_trailing_slash_names_the_right_url(client, calls_token):
    response = post(client, "calls", SEED_EXAMPLE, "application/json", calls_token, slash=False)
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["id"] == "trailing_slash_required"
    assert "http://testserver/api/v1/data/calls/" in error["description"]
    assert Upload.objects.count() == 0


def test_missing_trailing_slash_on_a_real_server(live_server, calls_token):
    response = requests.post(f"{live_server.url}/api/v1/data/calls", data=SEED_EXAMPLE, allow_redirects=False,
                             headers={"Authorization": f"Token {calls_token}",
                                      "Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 404
    assert f"{live_server.url}/api/v1/data/calls/" in response.json()["errors"][0]["description"]


def test_get_is_405_json(client, calls_token):
    response = client.get("/api/v1/data/calls/", HTTP_AUTHORIZATION=f"Token {calls_token}")
    assert response.status_code == 405
    assert response.json()["errors"][0]["id"] == "request_refused"


def test_disabled_integration_refuses(client, calls_integration, calls_token):
    Integration.objects.filter(pk=calls_integration.pk).update(enabled=False)
    response = post(client, "calls", SEED_EXAMPLE, "application/json", calls_token)
    assert response.status_code == 403
    assert Upload.objects.count() == 0


# --- Every error id, all or nothing --------------------------------------------------------------


def test_malformed_json_is_import_parse_json(client, calls_token, settings):
    response = post(client, "calls", '[{"email": "a@x.com", "date": "8/16/2016", "calls": 3}', "application/json",
                    calls_token)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["id"] for e in errors] == ["import_parse_json"]
    assert set(errors[0]) == {"id", "description", "row", "column"}
    assert_nothing_stored(settings)


def test_malformed_csv_is_import_parse_csv_with_its_row(client, activity_token, settings):
    body = csv_body(["ann@x.com,8/16/2016,3,1,1", "bob@x.com,8/16/2016,3,1,1,EXTRA,MORE"])
    response = post(client, "activity", body, "text/csv", activity_token)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["id"] == "import_parse_csv" and error["row"] == 2
    assert_nothing_stored(settings)


def test_content_type_not_matching_data_format_is_import_transform_data(client, calls_token, settings):
    response = post(client, "calls", b"email,date,calls\na@x.com,8/16/2016,3\n", "text/csv", calls_token)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["id"] == "import_transform_data" and "application/json" in error["description"]
    assert_nothing_stored(settings)


def test_missing_field_key_is_import_transform_data_naming_the_column(client, calls_token, settings):
    response = post(client, "calls", '[{"email": "a@x.com", "date": "8/16/2016"}]', "application/json", calls_token)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"id": "import_transform_data", "row": None, "column": "calls",
                                          "description": "The field key 'calls' of the Data Format is missing "
                                                         "from the file."}]
    assert_nothing_stored(settings)


def test_eighth_of_ten_records_malformed_stores_nothing(client, calls_token, settings, calls_integration,
                                                        django_capture_on_commit_callbacks):
    records = [{"email": f"user{i}@x.com", "date": "8/16/2016", "calls": i} for i in range(1, 11)]
    records[7]["calls"] = "three"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, "calls", json.dumps(records), "application/json", calls_token)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"id": "import_transform_data", "description": "This must be a number.",
                                          "row": 8, "column": "calls"}]
    assert callbacks == []  # no processing was queued
    assert_nothing_stored(settings)


def test_row_errors_name_row_and_column_and_stop_at_100(client, activity_token):
    rows = [f"user{i}@x.com,2016-08-{i % 28 + 1:02d},3,1,1" for i in range(150)]  # wrong date format, all of them
    rows[3] = ",8/16/2016,3,1,1"  # and no user on row 4
    response = post(client, "activity", csv_body(rows), "text/csv", activity_token)
    errors = response.json()["errors"]
    assert response.status_code == 400 and len(errors) == 100
    assert errors[0] == {"id": "import_transform_data", "row": 1, "column": "date",
                         "description": "The date must be written as M/D/YYYY (%m/%d/%Y)."}
    assert {"row": 4, "column": "email"}.items() <= next(e for e in errors if e["column"] == "email").items()


def test_nested_json_is_flattened_per_the_integration(client, tenant, owner, django_capture_on_commit_callbacks):
    integration = services.create_integration(
        tenant, owner, name="Nested", data_type="nested", data_format="json", field_keys=["user_email", "day", "stats_calls"],
        user_key="user_email", date_key="day", date_format="YYYY-MM-DD", flatten_json=True, flatten_separator="_",
        metrics=[{"name": "calls", "source_key": "stats_calls", "aggregation": "sum"}])
    token = services.regenerate_integration_token(integration, owner)
    body = json.dumps([{"user": {"email": "Ann@X.com "}, "day": "2016-08-16", "stats": {"calls": "2"}},
                       {"user": {"email": "ann@x.com"}, "day": "2016-08-16", "stats": {"calls": 5}}])
    body = body.replace('"user": {"email"', '"user_email": "Ann@X.com ", "user": {"email"')
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "nested", body, "application/json", token)
    assert response.status_code == 201, response.content
    value = MetricValue.objects.get()
    assert (value.account.email, value.value) == ("ann@x.com", 7.0)


def test_nested_json_refused_when_flattening_is_off(client, calls_integration, calls_token, settings):
    services.update_integration(calls_integration, None, {"flatten_json": False})
    body = json.dumps([{"email": "a@x.com", "date": "8/16/2016", "calls": 1, "extra": {"a": 1}}])
    response = post(client, "calls", body, "application/json", calls_token)
    [error] = response.json()["errors"]
    assert (error["id"], error["row"], error["column"]) == ("import_transform_data", 1, "extra")
    assert_nothing_stored(settings)


def test_unknown_user_rejected_when_the_integration_says_so(client, calls_integration, calls_token, tenant, settings):
    services.update_integration(calls_integration, None, {"unknown_user": "reject"})
    Account.objects.create(tenant=tenant, email="known@x.com")
    body = json.dumps([{"email": "known@x.com", "date": "8/16/2016", "calls": 1},
                       {"email": "stranger@x.com", "date": "8/16/2016", "calls": 1}])
    response = post(client, "calls", body, "application/json", calls_token)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["id"], error["row"], error["column"]) == ("import_transform_data", 2, "email")
    assert Upload.objects.count() == 0 and Account.objects.count() == 1


@pytest.mark.parametrize("body,error_id", [("", "import_parse_json"), ("   ", "import_parse_json"),
                                           ("[]", "import_transform_data")])
def test_empty_body_or_no_records_is_a_clear_error(client, calls_token, body, error_id, settings):
    response = post(client, "calls", body, "application/json", calls_token)
    assert response.status_code == 400
    assert response.json()["errors"][0]["id"] == error_id
    assert_nothing_stored(settings)


def test_csv_with_header_only_is_refused(client, activity_token):
    response = post(client, "activity", b"email,date,calls,talk_minutes,deals\n", "text/csv", activity_token)
    assert response.json()["errors"][0]["description"] == "The file holds no records."


# --- The 15 MB limit ------------------------------------------------------------------------------


def padded_csv(size):
    """A valid activity CSV of exactly `size` bytes (the last field padded with leading zeros)."""
    head = b"email,date,calls,talk_minutes,deals\n"
    row = b"ann@x.com,8/16/2016,3,1,1\n"
    rows = row * ((size - len(head)) // len(row) - 1)
    last_prefix = b"bob@x.com,8/16/2016,3,1,"
    pad = size - len(head) - len(rows) - len(last_prefix) - 2
    body = head + rows + last_prefix + b"0" * pad + b"1\n"
    assert len(body) == size
    return body


def test_exactly_15_mb_is_accepted(client, activity_token):
    assert MAX_UPLOAD_BYTES == 15_728_640
    response = post(client, "activity", padded_csv(MAX_UPLOAD_BYTES), "text/csv", activity_token)
    assert response.status_code == 201, response.content[:300]
    assert Upload.objects.get().size_bytes == MAX_UPLOAD_BYTES


def test_one_byte_more_is_413(client, activity_token, settings):
    response = post(client, "activity", padded_csv(MAX_UPLOAD_BYTES + 1), "text/csv", activity_token)
    assert response.status_code == 413
    assert response.json()["errors"][0]["id"] == "import_too_large"
    assert_nothing_stored(settings)


class UnreadableBody:
    """A request body that fails if anyone reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def test_content_length_over_the_limit_is_refused_before_reading(client, activity_token, settings):
    from django.test.client import RequestFactory

    from integrations.protocols.data_integration.inbound import DataUploadView

    request = RequestFactory().post("/api/v1/data/activity/", data=b"x", content_type="text/csv",
                                    HTTP_AUTHORIZATION=f"Token {activity_token}")
    request.META["CONTENT_LENGTH"] = str(MAX_UPLOAD_BYTES + 1)
    request.META["wsgi.input"] = UnreadableBody()
    request._stream = UnreadableBody()
    response = DataUploadView.as_view()(request, data_type="activity")
    response.render()
    assert response.status_code == 413
    assert "15,728,641 bytes" in json.loads(response.content)["errors"][0]["description"]
    assert_nothing_stored(settings)


def test_content_length_over_the_limit_on_a_real_server(live_server, activity_token):
    """The server answers 413 while the client is still sending: it never waits for the 16 MB."""
    import socket

    host, port = live_server.thread.host, live_server.thread.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"POST /api/v1/data/activity/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Token {activity_token}\r\n"
            f"Content-Type: text/csv\r\nContent-Length: {MAX_UPLOAD_BYTES + 1}\r\nConnection: close\r\n\r\n"
            "email,date\r\n".encode())
        answer = b""
        while b"import_too_large" not in answer:  # the whole answer, not EOF: the dev server keeps
            chunk = sock.recv(65536)               # the socket open to drain a body we never send
            if not chunk:
                break
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413")
    assert "import_too_large" in answer


class CountingBody:
    """A de-chunked request body (what a server such as gunicorn hands over) that counts what is read."""

    def __init__(self, data):
        self.stream, self.read_bytes = io.BytesIO(data), 0

    def read(self, size=-1):
        chunk = self.stream.read(size)
        self.read_bytes += len(chunk)
        return chunk


def chunked_request(token, body):
    from django.test.client import RequestFactory

    request = RequestFactory().post("/api/v1/data/activity/", data=b"", content_type="text/csv",
                                    HTTP_AUTHORIZATION=f"Token {token}", HTTP_TRANSFER_ENCODING="chunked")
    request.META.pop("CONTENT_LENGTH", None)
    request.META["CONTENT_TYPE"] = "text/csv"
    request.META["wsgi.input"] = body
    return request


def test_a_chunked_body_is_read_and_accepted(activity_token):
    from integrations.protocols.data_integration.inbound import DataUploadView

    body = CountingBody(csv_body(["ann@x.com,8/16/2016,3,1,1"]))
    response = DataUploadView.as_view()(chunked_request(activity_token, body), data_type="activity")
    assert response.status_code == 201 and response.data["records"] == 1, response.data


def test_a_chunked_body_over_the_limit_is_cut_off(activity_token, settings):
    from integrations.protocols.data_integration.inbound import DataUploadView

    body = CountingBody(padded_csv(MAX_UPLOAD_BYTES + 5_000_000))
    response = DataUploadView.as_view()(chunked_request(activity_token, body), data_type="activity")
    assert response.status_code == 413
    assert body.read_bytes == MAX_UPLOAD_BYTES + 1  # not a byte more than it takes to know
    assert_nothing_stored(settings)


def test_the_data_endpoint_is_not_in_the_v3_schema(client):
    paths = client.get("/api/v3/schema/", {"format": "json"}).json()["paths"]
    assert any(p.startswith("/api/v3/") for p in paths)
    assert not any(p.startswith("/api/v1/data") for p in paths)
