"""The Import Data endpoint (POST /api/v1/source/import), both ways.

Inbound: REST sources receive the seed's requests through the front door (the test client,
`X-API-KEY`), tasks run eagerly. Outbound: files go in through the intake and out to a vendor
played by pytest-httpserver on loopback, or to the portal's own endpoint on a live server.
"""

import csv
import io
import json
import threading

import pytest
import requests
from django.core.exceptions import ValidationError
from django.urls import reverse
from pytest_httpserver import HTTPServer
from werkzeug import Response

from integrations import registry, services
from integrations.protocols.source_import.models import FeedbackEntry
from uploads.delivery.dispatch import run_attempt
from uploads.errors import IntakeError
from uploads.intake import receive
from uploads.models import CallLog, Dispatch, Upload

ENDPOINT = "/api/v1/source/import"
MALFORMED = "The request was malformed."
VENDOR_KEY = "vendor-Key-5d1e0c7a93b4"
SEED_BODY = {
    "source_id": "src-1",
    "payload": [
        {"date": "2024-03-08 00:29:00", "name": "User 1", "content": "Feedback 1"},
        {"date": "2024-03-08 00:29:00", "name": "User 2", "content": "Feedback 2"},
    ],
}


@pytest.fixture
def source(tenant, owner):
    return services.create_integration(tenant, owner, name="Feedback", protocol="source_import", source_id="src-1")


@pytest.fixture
def api_key(source, owner):
    return services.regenerate_integration_token(source, owner)


def post(client, key, body, path=ENDPOINT, content_type="application/json", **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    if key is not None:
        headers["HTTP_X_API_KEY"] = key
    return client.post(path, data, content_type=content_type, **headers)


def entries(count, start=0):
    return [{"date": f"2024-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00", "name": f"User {i}",
             "content": f"Feedback {i}"} for i in range(start, start + count)]


# --- Inbound ---------------------------------------------------------------------------------


def test_the_seeds_example_starts_an_import_and_its_entries_are_stored(
        client, source, api_key, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, api_key, SEED_BODY)

    assert response.status_code == 200
    assert response.json() == {"message": "REST import started successfully"}
    upload = Upload.objects.get(integration=source)
    assert (upload.channel, upload.status, upload.records, upload.values_written) == ("import", "processed", 2, 2)
    assert upload.message == "2 entries, 2 new"
    stored = [(e.name, e.content, e.source_id, e.date.isoformat(), e.upload_id, e.tenant_id)
              for e in FeedbackEntry.objects.order_by("name")]
    assert stored == [("User 1", "Feedback 1", "src-1", "2024-03-08T00:29:00+00:00", upload.pk, source.tenant_id),
                      ("User 2", "Feedback 2", "src-1", "2024-03-08T00:29:00+00:00", upload.pk, source.tenant_id)]


def test_the_trailing_slash_variant_answers_the_same_without_a_redirect(
        client, source, api_key, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, api_key, SEED_BODY, path=ENDPOINT + "/")

    assert response.status_code == 200
    assert response.json() == {"message": "REST import started successfully"}
    assert FeedbackEntry.objects.filter(integration=source).count() == 2


def test_a_json_content_type_with_a_charset_is_json(client, source, api_key):
    response = post(client, api_key, SEED_BODY, content_type="application/json; charset=utf-8")
    assert response.status_code == 200


@pytest.mark.parametrize("how", ["missing", "wrong", "revoked", "as Authorization", "another protocol's token"])
def test_without_a_valid_api_key_it_is_401(client, owner, source, api_key, calls_integration, how):
    headers = {}
    key = {"missing": None, "wrong": api_key[:-4] + "AAAA", "revoked": api_key}.get(how)
    if how == "revoked":
        services.regenerate_integration_token(source, owner)
    elif how == "as Authorization":
        headers["HTTP_AUTHORIZATION"] = f"Token {api_key}"
    elif how == "another protocol's token":
        key = services.regenerate_integration_token(calls_integration, owner)

    response = post(client, key, SEED_BODY, **headers)

    assert response.status_code == 401
    assert set(response.json()) == {"message"} and "API key" in response.json()["message"]
    assert not Upload.objects.exists()


def test_other_methods_answer_in_json_too(client, source, api_key):
    response = client.get(ENDPOINT, HTTP_X_API_KEY=api_key)
    assert response.status_code == 405
    assert response.json() == {"message": 'Method "GET" not allowed.'}


def test_another_tenants_key_with_this_tenants_source_id_is_just_an_unknown_source_id(
        client, source, api_key, other_tenant, outsider):
    theirs = services.create_integration(other_tenant, outsider, name="Theirs", protocol="source_import",
                                         source_id="their-src")
    their_key = services.regenerate_integration_token(theirs, outsider)

    with_this_tenants_source = post(client, their_key, SEED_BODY)
    with_no_such_source = post(client, their_key, {**SEED_BODY, "source_id": "no-such-source"})
    mine_with_no_such_source = post(client, api_key, {**SEED_BODY, "source_id": "no-such-source"})

    expected = {"message": MALFORMED, "details": [{"field": "source_id", "error": "unknown source_id"}]}
    for response in (with_this_tenants_source, with_no_such_source, mine_with_no_such_source):
        assert response.status_code == 400
        assert response.json() == expected
    assert not Upload.objects.exists()


def test_a_bad_date_is_a_400_naming_the_field_and_nothing_is_stored(
        client, source, api_key, django_capture_on_commit_callbacks):
    body = {"source_id": "src-1", "payload": [SEED_BODY["payload"][0],
                                              {"date": "08/03/2024 00:29", "name": "User 2", "content": "x"}]}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, api_key, body)

    assert response.status_code == 400
    assert response.json() == {"message": MALFORMED,
                               "details": [{"field": "payload[1].date", "error": "expected YYYY-MM-DD HH:mm:ss"}]}
    assert Upload.objects.count() == 0
    assert FeedbackEntry.objects.count() == 0


@pytest.mark.parametrize("body, content_type, details", [
    ({"source_id": "src-1", "payload": []}, "application/json", [("payload", "must not be empty")]),
    ("not json", "application/json", [("body", "not valid JSON: Expecting value: line 1 column 1 (char 0)")]),
    (" \n", "application/json", [("body", "the request body is empty")]),
    ("", "", [("Content-Type", "expected application/json"), ("body", "the request body is empty")]),
    ([SEED_BODY], "application/json", [("body", "expected a JSON object with source_id and payload")]),
    ({"payload": SEED_BODY["payload"]}, "application/json", [("source_id", "required")]),
    ({"source_id": 7, "payload": SEED_BODY["payload"]}, "application/json", [("source_id", "expected a string")]),
    ({"source_id": "src-1", "payload": {"date": "2024-03-08 00:29:00"}}, "application/json",
     [("payload", "expected a list of entries")]),
    ({"source_id": "src-1", "payload": [SEED_BODY["payload"][0], "User 2"]}, "application/json",
     [("payload[1]", "expected an object with date, name and content")]),
    ({"source_id": "src-1", "payload": [{"date": "2024-03-08 00:29:00", "name": None}]}, "application/json",
     [("payload[0].name", "expected a string"), ("payload[0].content", "required")]),
    ({"source_id": "src-1", "payload": [{"date": "2024-02-30 10:00:00", "name": "n" * 201, "content": "c" * 10_001}]},
     "application/json", [("payload[0].date", "expected YYYY-MM-DD HH:mm:ss"),
                          ("payload[0].name", "at most 200 characters"),
                          ("payload[0].content", "at most 10,000 characters")]),
    ({"source_id": "src-1", "payload": [{"date": "2024-3-8 0:29:00", "name": "a", "content": "b"}]},
     "application/json", [("payload[0].date", "expected YYYY-MM-DD HH:mm:ss")]),
    (SEED_BODY, "application/x-www-form-urlencoded", [("Content-Type", "expected application/json")]),
])
def test_a_malformed_request_is_a_400_saying_what_and_where(client, source, api_key, body, content_type, details):
    response = post(client, api_key, body, content_type=content_type)

    assert response.status_code == 400
    assert response.json() == {"message": MALFORMED, "details": [{"field": f, "error": e} for f, e in details]}
    assert not Upload.objects.exists()


def test_the_longest_name_and_content_are_accepted(client, source, api_key):
    body = {"source_id": "src-1", "payload": [{"date": "2024-03-08 00:29:00", "name": "n" * 200,
                                               "content": "c" * 10_000}]}
    assert post(client, api_key, body).status_code == 200


def test_a_body_announced_over_15_mib_is_413_before_it_is_read(client, source, api_key):
    response = post(client, api_key, SEED_BODY, CONTENT_LENGTH=str(15 * 1024 * 1024 + 1))

    assert response.status_code == 413
    assert "15 MB" in response.json()["message"]
    assert not Upload.objects.exists()


def test_a_disabled_source_is_403(client, owner, source, api_key):
    services.update_integration(source, owner, {"enabled": False})

    response = post(client, api_key, SEED_BODY)

    assert response.status_code == 403
    assert "disabled" in response.json()["message"]


def test_the_same_entries_sent_twice_are_stored_once(client, source, api_key, django_capture_on_commit_callbacks):
    twice_in_one = {"source_id": "src-1", "payload": SEED_BODY["payload"] * 2}
    with django_capture_on_commit_callbacks(execute=True):
        post(client, api_key, twice_in_one)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, api_key, {"source_id": "src-1", "payload": SEED_BODY["payload"] + entries(1)})

    first, second = Upload.objects.filter(integration=source).order_by("id")
    assert (first.message, second.message) == ("4 entries, 2 new", "3 entries, 1 new")
    assert FeedbackEntry.objects.filter(integration=source).count() == 3


def test_a_renamed_source_keeps_its_entries_once(client, owner, source, api_key,
                                                 django_capture_on_commit_callbacks):
    """Entries are the source's (the integration's), not its source_id's: after a rename, the
    same entries sent under the new source_id are not stored again."""
    with django_capture_on_commit_callbacks(execute=True):
        post(client, api_key, SEED_BODY)
    services.update_integration(source, owner, {"source_id": "src-renamed"})
    with django_capture_on_commit_callbacks(execute=True):
        post(client, api_key, {**SEED_BODY, "source_id": "src-renamed"})

    assert Upload.objects.filter(integration=source).latest("id").message == "2 entries, 0 new"
    assert FeedbackEntry.objects.filter(integration=source).count() == 2


def test_entries_that_differ_only_where_name_ends_and_content_begins_are_two(
        client, source, api_key, django_capture_on_commit_callbacks):
    payload = [{"date": "2024-03-08 00:29:00", "name": "a|b", "content": "c"},
               {"date": "2024-03-08 00:29:00", "name": "a", "content": "b|c"}]
    with django_capture_on_commit_callbacks(execute=True):
        post(client, api_key, {"source_id": "src-1", "payload": payload})

    assert FeedbackEntry.objects.count() == 2


def test_purge_all_data_deletes_the_entries(owner_client, tenant, source, api_key,
                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(owner_client, api_key, SEED_BODY)
    assert source.protocol_spec.processed_count(source) == 2

    owner_client.post(reverse("integration_purge", args=[tenant.slug, source.pk]))

    assert FeedbackEntry.objects.count() == 0
    assert Upload.objects.get(integration=source).status == "purged"


def test_the_credentials_tab_shows_endpoint_source_id_and_example(owner_client, tenant, source, api_key):
    page = owner_client.get(reverse("integration_credentials", args=[tenant.slug, source.pk])).content.decode()

    assert "http://testserver/api/v1/source/import" in page and "src-1" in page
    assert "X-API-KEY: your_api_key" in page and "2024-03-08 00:29:00" in page
    assert api_key not in page and api_key.split(".")[0] in page  # only masked
    # What the source received is on its Entries tab (tests/test_source_import_entries.py).
    assert reverse("source_import_entries", args=[tenant.slug, source.pk]) in page


def test_the_source_tab_changes_the_source_id(owner_client, tenant, source, api_key):
    url = reverse("integration_protocol_settings", args=[tenant.slug, source.pk])
    page = owner_client.get(url).content.decode()
    assert "Source</a>" in page and 'name="source_id"' in page and 'name="date_key"' not in page

    owner_client.post(url, {"source_id": "src-2"})

    source.refresh_from_db()
    assert source.key == "src-2"
    assert post(owner_client, api_key, {**SEED_BODY, "source_id": "src-2"}).status_code == 200


def test_a_source_id_is_unique_per_tenant_and_well_formed(tenant, owner, other_tenant, outsider, source):
    with pytest.raises(ValidationError, match="already has a source"):
        services.create_integration(tenant, owner, name="Again", protocol="source_import", source_id="src-1")
    with pytest.raises(ValidationError, match="Letters, digits"):
        services.create_integration(tenant, owner, name="Bad", protocol="source_import", source_id="-src 2")
    services.create_integration(other_tenant, outsider, name="Theirs", protocol="source_import", source_id="src-1")
    assert source.settings == {}  # a REST source has nothing to map


def test_demo_creates_a_rest_source_once_and_issues_a_working_key(client, tenant, owner):
    protocol = registry.get("source_import")
    first = protocol.demo(tenant, owner, "http://testserver")
    second = protocol.demo(tenant, owner, "http://testserver")

    assert first[0]["endpoint"] == "http://testserver/api/v1/source/import"
    assert {k: v for k, v in second[0].items() if k != "api_key"} == {
        "name": "Feedback (REST source)", "protocol": "source_import", "direction": "inbound",
        "endpoint": "http://testserver/api/v1/source/import", "source_id": "demo-feedback"}
    body = {**SEED_BODY, "source_id": "demo-feedback"}
    assert post(client, first[0]["api_key"], body).status_code == 401  # regenerated since
    assert post(client, second[0]["api_key"], body).status_code == 200


# --- Outbound --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 10


def csv_file(rows, date_format="%d/%m/%Y %H:%M"):
    """A vendor-bound CSV with its own column names and date format."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["when", "who", "text"])
    for i in range(rows):
        writer.writerow([f"{1 + i % 28:02d}/03/2024 {i % 24:02d}:{i % 60:02d}", f"User {i}", f"Feedback, {i}"])
    return out.getvalue().encode()


def outbound_source(tenant, owner, url, **settings):
    integration = services.create_integration(
        tenant, owner, name="To the vendor", direction="outbound", protocol="source_import", source_id="vendor-src",
        endpoint_url=url, credentials={"api_key": VENDOR_KEY},
        **{"date_key": "when", "name_key": "who", "content_key": "text", "date_format": "%d/%m/%Y %H:%M", **settings})
    services.set_sandbox(integration, owner, False)
    return integration


@pytest.fixture
def vendor(tenant, owner, httpserver):
    return outbound_source(tenant, owner, httpserver.url_for(ENDPOINT))


class Vendor:
    """Answers each request with the next status (200 once they run out) and keeps what came."""

    def __init__(self, httpserver, *statuses, answer=None):
        self.statuses, self.answer, self.received = list(statuses), answer, []
        httpserver.expect_request(ENDPOINT, method="POST").respond_with_handler(self)

    def __call__(self, request):
        self.received.append({"headers": dict(request.headers), "body": json.loads(request.data)})
        status = self.statuses.pop(0) if self.statuses else 200
        body = self.answer if status == 400 and self.answer else {"message": "REST import started successfully"}
        return Response(json.dumps(body), status=status, content_type="application/json")

    def firsts(self):
        """Each request's first entry name and size."""
        return [(r["body"]["payload"][0]["name"], len(r["body"]["payload"])) for r in self.received]


def send(integration, body, content_type="text/csv"):
    """Send a file through the intake and make the dispatch's attempts until there are none left."""
    upload = receive(integration, body, channel="web", content_type=content_type, filename="feedback.csv")
    dispatch = Dispatch.objects.get(upload=upload)
    attempt = 1
    while run_attempt(dispatch.pk, attempt) is not None:
        attempt += 1
    upload.refresh_from_db()
    return upload


def test_1200_rows_go_in_three_batches_of_the_seeds_entries(vendor, httpserver):
    answers = Vendor(httpserver)

    upload = send(vendor, csv_file(1200))

    assert upload.status == "delivered", upload.message
    assert upload.records == 1200
    assert answers.firsts() == [("User 0", 500), ("User 500", 500), ("User 1000", 200)]
    first = answers.received[0]
    assert first["headers"]["X-Api-Key"] == VENDOR_KEY
    assert first["headers"]["Content-Type"] == "application/json"
    assert set(first["body"]) == {"source_id", "payload"} and first["body"]["source_id"] == "vendor-src"
    assert first["body"]["payload"][1] == {"date": "2024-03-02 01:01:00", "name": "User 1", "content": "Feedback, 1"}
    assert Dispatch.objects.get(upload=upload).progress == {"batches_delivered": 3}
    assert "1,200 entries in 3 batches" in upload.message


def test_a_json_file_of_objects_is_sent_too(vendor, httpserver):
    answers = Vendor(httpserver)
    rows = [{"when": "08/03/2024 00:29", "who": "User 1", "text": "Feedback 1"},
            {"when": "08/03/2024 00:30", "who": "User 2", "text": 42}]

    upload = send(vendor, json.dumps(rows).encode(), content_type="application/json")

    assert upload.status == "delivered"
    assert answers.received[0]["body"]["payload"] == [
        {"date": "2024-03-08 00:29:00", "name": "User 1", "content": "Feedback 1"},
        {"date": "2024-03-08 00:30:00", "name": "User 2", "content": "42"}]


def test_a_retry_after_a_500_sends_the_failed_batch_and_the_rest_only(vendor, httpserver):
    answers = Vendor(httpserver, 200, 500)

    upload = send(vendor, csv_file(1200))

    assert upload.status == "delivered", upload.message
    assert answers.firsts() == [("User 0", 500), ("User 500", 500), ("User 500", 500), ("User 1000", 200)]
    calls = list(CallLog.objects.filter(upload=upload).order_by("id").values_list("attempt", "status_code"))
    assert calls == [(1, 200), (1, 500), (2, 200), (2, 200)]


def test_a_vendor_that_times_out_mid_file_is_retried_from_the_batch_it_did_not_answer(
        settings, vendor, httpserver):
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 0.3
    released, received = threading.Event(), []

    def answer(request):
        received.append(json.loads(request.data)["payload"][0]["name"])
        if len(received) == 2:
            released.wait(10)  # batch 2 goes unanswered until the portal has given up on it
        return Response(json.dumps({"message": "REST import started successfully"}), status=200)

    httpserver.expect_request(ENDPOINT, method="POST").respond_with_handler(answer)
    upload = receive(vendor, csv_file(1200), channel="web", content_type="text/csv")
    dispatch = Dispatch.objects.get(upload=upload)

    assert run_attempt(dispatch.pk, 1) is not None
    released.set()
    dispatch.refresh_from_db()
    upload.refresh_from_db()
    assert dispatch.progress == {"batches_delivered": 1}
    assert "could not be reached at batch 2 of 3 (ReadTimeout)" in upload.message

    assert run_attempt(dispatch.pk, 2) is None
    upload.refresh_from_db()
    assert upload.status == "delivered"
    assert received == ["User 0", "User 500", "User 500", "User 1000"]


def test_a_400_fails_for_good_with_the_vendors_message_on_the_upload(vendor, httpserver):
    answer = {"message": "The request was malformed.",
              "details": [{"field": "payload[3].content", "error": "at most 10,000 characters"}]}
    answers = Vendor(httpserver, 200, 400, answer=answer)

    upload = send(vendor, csv_file(1200))

    assert upload.status == "not_delivered"
    assert "The request was malformed." in upload.message and "batch 2 of 3" in upload.message
    assert len(answers.received) == 2
    assert upload.errors == [{"id": "vendor_refused_entry", "description": "at most 10,000 characters",
                              "row": 504, "column": "text"}]
    assert Dispatch.objects.get(upload=upload).progress == {"batches_delivered": 1}


def test_the_vendors_api_key_is_never_in_the_call_log(vendor, httpserver):
    Vendor(httpserver, 500)
    upload = send(vendor, csv_file(1200))

    rows = CallLog.objects.filter(upload=upload)
    assert rows.count() == 4 and all(r.request_headers["X-API-KEY"] == "[redacted]" for r in rows)
    stored = json.dumps(list(CallLog.objects.values()), default=str) + json.dumps(upload.errors) + upload.message
    assert VENDOR_KEY not in stored


@pytest.mark.parametrize("body, content_type, expected", [
    (b"when,who\n08/03/2024 00:29,User 1\n", "text/csv", (None, "text")),
    (b"when,who,text\n08/03/2024 00:29,User 1,x\n2024-03-08 00:30,User 2,y\n", "text/csv", (2, "when")),
    (b'[{"when": "08/03/2024 00:29", "who": null, "text": "x"}]', "application/json", (1, "who")),
    (b'{"when": "08/03/2024 00:29"}', "application/json", (None, None)),
    (b"when,who,text\n", "text/csv", (None, None)),
])
def test_a_file_that_cannot_be_sent_whole_is_refused_and_nothing_is_sent(vendor, httpserver, body, content_type,
                                                                          expected):
    answers = Vendor(httpserver)

    with pytest.raises(IntakeError) as refused:
        receive(vendor, body, channel="web", content_type=content_type)

    assert (refused.value.errors[0]["row"], refused.value.errors[0]["column"]) == expected
    assert refused.value.status == 400
    assert answers.received == [] and not Upload.objects.exists()


def test_in_sandbox_mode_only_the_first_batch_is_logged_and_nothing_sent(tenant, owner, vendor, httpserver):
    answers = Vendor(httpserver)
    services.set_sandbox(vendor, owner, True)

    upload = receive(vendor, csv_file(1200), channel="web", content_type="text/csv")

    assert upload.status == "dry_run" and answers.received == []
    call = CallLog.objects.get(upload=upload)
    assert call.dry_run and call.request_headers["X-API-KEY"] == "[redacted]"
    assert call.request_body_excerpt.startswith('{"source_id": "vendor-src", "payload": [{"date": "2024-03-01')


def test_the_mapping_is_checked_and_only_kept_for_outbound(tenant, owner, httpserver):
    url = httpserver.url_for(ENDPOINT)
    with pytest.raises(ValidationError, match="three different columns"):
        outbound_source(tenant, owner, url, name_key="when")
    with pytest.raises(ValidationError, match="year, a month and a day"):
        outbound_source(tenant, owner, url, date_format="%H:%M")
    with pytest.raises(ValidationError, match="5000"):
        outbound_source(tenant, owner, url, batch_size=5001)
    defaults = services.create_integration(
        tenant, owner, name="Defaults", direction="outbound", protocol="source_import", source_id="d",
        endpoint_url=url, credentials={"api_key": VENDOR_KEY})
    assert defaults.settings == {"date_key": "date", "name_key": "name", "content_key": "content",
                                 "date_format": "%Y-%m-%d %H:%M:%S", "batch_size": 500}


# --- Both ways -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_1200_entries_sent_to_the_portals_own_endpoint_are_stored_once(live_server, tenant, owner):
    inbound = services.create_integration(tenant, owner, name="Feedback", protocol="source_import",
                                          source_id="src-1")
    inbound_key = services.regenerate_integration_token(inbound, owner)
    outbound = services.create_integration(
        tenant, owner, name="Feedback to ourselves", direction="outbound", protocol="source_import",
        source_id="src-1", endpoint_url=live_server.url + ENDPOINT, credentials={"api_key": inbound_key},
        date_key="when", name_key="who", content_key="text", date_format="%d/%m/%Y %H:%M")
    services.set_sandbox(outbound, owner, False)
    file = csv_file(1200)

    sent = receive(outbound, file, channel="web", content_type="text/csv")  # tasks run eagerly on commit

    sent.refresh_from_db()
    assert sent.status == "delivered", sent.message
    assert list(CallLog.objects.filter(upload=sent).values_list("status_code", flat=True)) == [200, 200, 200]
    received = Upload.objects.filter(integration=inbound).order_by("id")
    assert [(u.channel, u.status, u.message) for u in received] == [
        ("import", "processed", "500 entries, 500 new"), ("import", "processed", "500 entries, 500 new"),
        ("import", "processed", "200 entries, 200 new")]
    assert FeedbackEntry.objects.filter(integration=inbound).count() == 1200

    again = receive(outbound, file, channel="web", content_type="text/csv")

    again.refresh_from_db()
    assert again.status == "delivered", again.message
    assert FeedbackEntry.objects.filter(integration=inbound).count() == 1200
    assert [u.message for u in Upload.objects.filter(integration=inbound).order_by("id")][3:] == [
        "500 entries, 0 new", "500 entries, 0 new", "200 entries, 0 new"]
    assert inbound_key not in json.dumps(list(CallLog.objects.values()), default=str)


@pytest.mark.django_db(transaction=True)
def test_a_batch_sent_again_after_a_read_timeout_is_stored_once_by_the_portal(live_server, settings, tenant, owner):
    """The protocol has no idempotency key: a batch whose answer never came is sent again,
    though the receiver may have it already. The portal, receiving, stores it once."""
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 2
    inbound = services.create_integration(tenant, owner, name="Feedback", protocol="source_import",
                                          source_id="src-1")
    inbound_key = services.regenerate_integration_token(inbound, owner)
    retried, forwarded = threading.Event(), []

    def slow_second_answer(request):
        """Passes each batch on to the portal; the first answer to batch 2 comes only once the
        sender, having given up on it, sends batch 2 again."""
        answer = requests.post(live_server.url + ENDPOINT, data=request.data, timeout=30, headers={
            "X-API-KEY": request.headers["X-API-KEY"], "Content-Type": request.headers["Content-Type"]})
        forwarded.append(json.loads(request.data)["payload"][0]["name"])
        if len(forwarded) == 2:
            retried.wait(20)
        elif len(forwarded) == 3:
            retried.set()
        return Response(answer.content, status=answer.status_code, content_type="application/json")

    relay = HTTPServer(threaded=True)  # the retry comes while the first answer is still held
    relay.expect_request(ENDPOINT, method="POST").respond_with_handler(slow_second_answer)
    relay.start()
    try:
        outbound = services.create_integration(
            tenant, owner, name="Feedback to ourselves", direction="outbound", protocol="source_import",
            source_id="src-1", endpoint_url=relay.url_for(ENDPOINT), credentials={"api_key": inbound_key},
            date_key="when", name_key="who", content_key="text", date_format="%d/%m/%Y %H:%M", max_attempts=3)
        services.set_sandbox(outbound, owner, False)

        sent = receive(outbound, csv_file(1200), channel="web", content_type="text/csv")  # attempts run eagerly
    finally:
        retried.set()
        relay.stop()

    sent.refresh_from_db()
    assert sent.status == "delivered", sent.message
    calls = CallLog.objects.filter(upload=sent).order_by("id")
    assert [(c.attempt, c.status_code, c.error_class) for c in calls] == [
        (1, 200, ""), (1, None, "ReadTimeout"), (2, 200, ""), (2, 200, "")]
    assert forwarded == ["User 0", "User 500", "User 500", "User 1000"]
    received = Upload.objects.filter(integration=inbound).order_by("id")
    assert [u.message for u in received] == [
        "500 entries, 500 new", "500 entries, 500 new", "500 entries, 0 new", "200 entries, 200 new"]
    assert FeedbackEntry.objects.filter(integration=inbound).count() == 1200
