"""The fast paths of docs/performance.md keep the rules: small plain JSON read without pandas accepts
exactly what the full parser accepts; a batch of uploads processed under one lock stays all or
nothing per upload, in arrival order, idempotent, and Sandbox Mode still halts nothing; the
database-specific writes replace values; outbound sessions trust a private CA only through the
setting. On whichever database the run uses (CI: SQLite, then PostgreSQL)."""

import datetime
import json
import random
import struct

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations import services
from integrations.models import Integration
from integrations.protocols.data_integration import protocol as data_protocol
from integrations.protocols.data_integration.parsing import parse_upload
from integrations.protocols.data_integration.protocol import DataFormat, plain_json_records
from integrations.protocols.data_integration.values import COPY_THRESHOLD, aggregate, plain_values
from uploads import processing, queue
from uploads.delivery import exchange
from uploads.errors import IntakeError
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls_token(calls_integration, owner):
    return services.regenerate_integration_token(calls_integration, owner)


@pytest.fixture
def send(client, django_capture_on_commit_callbacks):
    """POST records to the data endpoint as a vendor would; the worker's part runs at commit unless run=False."""

    def send(token, records, run=True, data_type="calls"):
        body = records if isinstance(records, bytes) else json.dumps(records).encode()
        with django_capture_on_commit_callbacks(execute=run) as callbacks:
            response = client.post(f"/api/v1/data/{data_type}/", data=body, content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Token {token}")
        assert response.status_code == 201, response.content
        upload = Upload.objects.get(pk=response.json()["id"])
        upload.pending = callbacks
        return upload

    return send


def values(integration):
    return {(v.metric.name, v.account.email, v.date.isoformat()): v.value
            for v in MetricValue.objects.filter(integration=integration).select_related("metric", "account")}


def status(upload):
    upload.refresh_from_db()
    return upload.status


# --- Small plain JSON: the same answers as the full parser ------------------------------------------


def full_outcome(fmt, body, content_type="application/json"):
    try:
        return parse_upload(fmt, body, content_type)
    except IntakeError:
        return None


def assert_same_as_full_parser(fmt, body, content_type="application/json"):
    """Whatever the plain reader accepts, the full parser accepts, with the same records and values."""
    plain = plain_json_records(fmt, body, content_type)
    if plain is None:
        return False
    full = full_outcome(fmt, body, content_type)
    assert full is not None, f"the plain reader accepted what the parser refuses: {body!r}"
    assert len(plain) == full.records
    accounts = {email: n for n, email in enumerate(sorted(set(full.user_emails) | {u for u, _, _ in plain}), 1)}
    expected = [(int(r["metric_id"]), int(r["account_id"]), r["date"].date(), float(r["value"]))
                for r in aggregate(full, fmt.metrics, accounts).to_dict("records")]
    got = plain_values(fmt.metrics, plain, accounts)
    assert got == expected, body
    assert [struct.pack("<d", v) for *_, v in got] == [struct.pack("<d", v) for *_, v in expected], body  # every bit
    return True


@pytest.fixture
def calls_format(calls_integration):
    return DataFormat.of(calls_integration)


PLAIN = [
    [{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}],
    {"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": 3},  # one record on its own
    [{"email": "  Ann@X.com ", "date": "12/31/2016", "calls": 1.5},
     {"email": "ann@x.com", "date": "12/31/2016", "calls": "-2.25"},
     {"email": "bob@x.com", "date": "1/1/2017", "calls": 0, "region": "north", "note": None}],
]
NOT_PLAIN = [
    [],
    [{"email": "ann@x.com", "date": "8/16/2016", "calls": ""}],  # blank: the parser's to judge
    [{"email": "ann@x.com", "date": "8/16/2016", "calls": " 3"}],
    [{"email": "ann@x.com", "date": "8/16/2016", "calls": "3e2"}],
    [{"email": "ann@x.com", "date": "8/16/2016", "calls": True}],
    [{"email": "ann@x.com", "date": "8/16/2016", "calls": None}],
    [{"email": "ann@x.com", "date": "8/16/2016", "calls": 10 ** 20}],
    [{"email": "ann@x.com", "date": "8/16/2016", "calls": {"n": 3}}],
    [{"email": "ann@x.com", "date": "8/16/2016"}],
    [{"email": "ann@x.com", "date": "2/30/2016", "calls": 1}],
    [{"email": "ann@x.com", "date": "2016-08-16", "calls": 1}],
    [{"email": "ann@x.com", "date": " 8/16/2016", "calls": 1}],
    [{"email": "ann@x.com", "date": "8/16/0216", "calls": 1}],
    [{"email": "ann", "date": "8/16/2016", "calls": 1}],
    [{"email": "ann smith@x.com", "date": "8/16/2016", "calls": 1}],
    [{"email": "", "date": "8/16/2016", "calls": 1}],
    [{"email": 42, "date": "8/16/2016", "calls": 1}],
    [{"email": "ann@x.com", "date": "8/16/2016", "calls": 1}, "not a record"],
    ["ann@x.com"],
]


@pytest.mark.parametrize("records", PLAIN)
def test_plain_json_is_read_as_the_parser_reads_it(calls_format, records):
    assert assert_same_as_full_parser(calls_format, json.dumps(records).encode())


@pytest.mark.parametrize("records", NOT_PLAIN)
def test_what_is_not_plain_goes_to_the_parser(calls_format, records):
    assert plain_json_records(calls_format, json.dumps(records).encode(), "application/json") is None


@pytest.mark.parametrize("body", [b"[{\"email\": \"a@x.com\", \"date\": \"8/16/2016\", \"calls\": NaN}]",
                                  b"[{\"email\": \"a@x.com\", \"date\": \"8/16/2016\", \"calls\": 1}",
                                  "[{\"email\": \"\u00e4@x.com\", \"date\": \"8/16/2016\", \"calls\": 1}]".encode(),
                                  b"\xff\xfe[]", b"   ", b"[" * 5000 + b"]" * 5000])
def test_bodies_the_parser_must_judge(calls_format, body):
    assert plain_json_records(calls_format, body, "application/json") is None


def test_other_content_types_sizes_and_rules_go_to_the_parser(calls_integration, calls_format):
    body = json.dumps(PLAIN[0]).encode()
    assert plain_json_records(calls_format, body, "text/csv") is None
    assert plain_json_records(calls_format, body, "application/json; charset=utf-8") is not None
    big = json.dumps(PLAIN[0] * 2000).encode()
    assert len(big) > data_protocol.PLAIN_JSON_BYTES and plain_json_records(calls_format, big, "application/json") is None
    calls_integration.settings = {**calls_integration.settings, "unknown_user": "reject"}
    assert plain_json_records(DataFormat.of(calls_integration), body, "application/json") is None


@pytest.mark.parametrize("date_format, written", [
    ("M/D/YYYY", ["8/16/2016", "08/06/2016", "12/1/1999"]),
    ("D/M/YYYY", ["16/8/2016", "6/08/2016", "1/12/1999"]),
    ("YYYY-MM-DD", ["2016-08-16", "1999-12-01"]),
    ("DD.MM.YYYY", ["16.08.2016", "01.12.1999"]),
    ("YYYY/MM/DD", ["2016/08/16", "1999/12/01"]),
])
def test_each_date_format(tenant, owner, date_format, written):
    integration = services.create_integration(
        tenant, owner, name="Dates", data_type="dates", data_format="json", field_keys=["email", "date", "calls"],
        date_format=date_format, metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
    fmt = DataFormat.of(integration)
    body = json.dumps([{"email": f"u{i}@x.com", "date": d, "calls": i} for i, d in enumerate(written)]).encode()
    assert assert_same_as_full_parser(fmt, body)


def test_random_records_never_accepted_where_the_parser_refuses(tenant, owner):
    """Random mixes of plain and tricky values, every aggregation: the plain reader either declines or agrees."""
    integration = services.create_integration(
        tenant, owner, name="Mixed", data_type="mixed", data_format="json",
        field_keys=["email", "date", "a", "b", "c", "d", "e"],
        metrics=[{"name": n, "source_key": n, "aggregation": agg}
                 for n, agg in [("a", "sum"), ("b", "max"), ("c", "min"), ("d", "last"), ("e", "count")]])
    fmt = DataFormat.of(integration)
    rng = random.Random(20161608)
    users = (["ann@x.com", " Ann@X.com", "bob@y.org", "BOB@y.org "], ["ann", "", "c\u00e9@x.com", "x@\x01.com", None])
    dates = (["8/16/2016", "8/17/2016", "08/16/2016"], ["13/1/2016", "8/16/16", "", "2016-08-16", 20160816])
    numbers = ([0, 1, -2, 3.5, "4", "-0.5", float(2 ** 60)],
               ["1,000", "", " 7", "1e3", None, True, 10 ** 20, [1], "Infinity"])

    def pick(plain_and_tricky):
        plain, tricky = plain_and_tricky
        return rng.choice(plain if rng.random() < 0.9 else tricky)

    accepted = 0
    for _ in range(400):
        records = [{"email": pick(users), "date": pick(dates), **{key: pick(numbers) for key in "abcde"}}
                   for _ in range(rng.randint(1, 4))]
        for record in records:
            if rng.random() < 0.05:
                del record[rng.choice(list(record))]
        body = json.dumps(records).encode()
        accepted += assert_same_as_full_parser(fmt, body)
    assert accepted > 10  # the plain reader did take part


def test_a_small_upload_is_checked_and_processed_without_pandas(send, calls_token, calls_integration, monkeypatch):
    calls = []
    monkeypatch.setattr(data_protocol, "parse_upload", lambda *args: calls.append(args))
    upload = send(calls_token, [{"email": "Ann@x.com", "date": "8/16/2016", "calls": "3"},
                                {"email": "ann@x.com", "date": "8/16/2016", "calls": 4}])
    assert status(upload) == "processed" and upload.records == 2 and upload.values_written == 1
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 7.0}
    assert calls == []


def test_a_refused_small_upload_stores_nothing(client, calls_token, calls_integration):
    for body in ([{"email": "ann", "date": "8/16/2016", "calls": 1}],
                 [{"email": "ann@x.com", "date": "2/30/2016", "calls": 1}]):
        response = client.post("/api/v1/data/calls/", data=json.dumps(body), content_type="application/json",
                               HTTP_AUTHORIZATION=f"Token {calls_token}")
        assert response.status_code == 400 and response.json()["errors"][0]["row"] == 1
    assert not Upload.objects.exists() and not Account.objects.exists()


# --- Processing in batches -------------------------------------------------------------------------------------


def test_a_backlog_is_processed_in_one_batch_in_arrival_order(send, calls_token, calls_integration, owner):
    services.set_sandbox(calls_integration, owner, False)
    uploads = [send(calls_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": n}], run=False)
               for n in range(1, 6)]
    with CaptureQueriesContext(connection) as queries:
        for callback in uploads[0].pending:
            callback()
    assert [status(u) for u in uploads] == ["processed"] * 5
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 5.0}  # the last one's
    commits = [q for q in queries.captured_queries if q["sql"].upper().startswith(("COMMIT", "RELEASE SAVEPOINT"))]
    assert len([q for q in commits if q["sql"].upper().startswith("COMMIT")]) <= 2  # one batch, not five
    # The other uploads' own tasks come later and find nothing to do.
    for upload in uploads[1:]:
        assert processing.process_upload(upload.pk) is None
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 5.0}


def test_a_failure_in_a_batch_keeps_the_ones_before_and_halts_the_ones_after(send, calls_token, calls_integration,
                                                                             owner, django_capture_on_commit_callbacks):
    services.set_sandbox(calls_integration, owner, False)
    first, broken, after = [send(calls_token, [{"email": f"u{n}@x.com", "date": "8/16/2016", "calls": n}], run=False)
                            for n in (1, 2, 3)]
    broken.file.storage.delete(broken.file.name)  # its stored file is lost before the worker gets to it
    for callback in first.pending:
        callback()
    assert (status(first), status(broken)) == ("processed", "failed")
    assert broken.values_written == 0 and broken.errors[0]["id"] == "import_transform_data"
    for callback in after.pending:  # its own task: it waits behind the failed one
        callback()
    assert status(after) == "waiting"
    assert values(calls_integration) == {("calls", "u1@x.com", "2016-08-16"): 1.0}
    with django_capture_on_commit_callbacks(execute=True):
        processing.skip_upload(broken, owner)
    assert status(after) == "processed"
    assert set(values(calls_integration)) == {("calls", "u1@x.com", "2016-08-16"), ("calls", "u3@x.com", "2016-08-16")}


def test_the_uploads_after_the_first_are_read_together_and_written_once_each(send, calls_token, calls_integration,
                                                                             owner, monkeypatch):
    monkeypatch.setattr(processing, "FOLLOWING_READ_AT_ONCE", 3)
    services.set_sandbox(calls_integration, owner, False)
    uploads = [send(calls_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": n}], run=False)
               for n in range(1, 9)]
    broken = uploads[6]
    broken.file.storage.delete(broken.file.name)
    with CaptureQueriesContext(connection) as queries:
        processing.process_upload(uploads[0].pk)
    assert [status(u) for u in uploads] == ["processed"] * 6 + ["failed", "queued"]
    for upload in uploads[:7]:
        assert upload.started_at is not None and upload.finished_at >= upload.started_at
    sql = [q["sql"] for q in queries.captured_queries]
    # The first: claimed, then processed. The other five, and the one that failed: written once.
    assert len([q for q in sql if q.startswith('UPDATE "uploads_upload"')]) == 2 + 5 + 1
    # The six after the first, three at a time (the one before the failure ends the second read).
    whole_rows = [q for q in sql if q.startswith('SELECT "uploads_upload"."id", "uploads_upload"."tenant_id"')
                  and '"uploads_upload"."id" >' in q]
    assert len(whole_rows) == 2
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 6.0}


def test_a_batch_stops_at_its_bound_and_hands_the_rest_to_the_queue(send, calls_token, calls_integration, owner,
                                                                    monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(processing, "BATCH_UPLOADS", 2)
    services.set_sandbox(calls_integration, owner, False)
    uploads = [send(calls_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": n}], run=False)
               for n in range(1, 5)]
    for upload in uploads[2:]:  # tasks for them (sent again by the sweep) arrived first, behind the others
        processing.process_upload(upload.pk)
    assert [status(u) for u in uploads] == ["queued", "queued", "waiting", "waiting"]
    with django_capture_on_commit_callbacks(execute=True) as released:
        for callback in uploads[0].pending:  # a batch of two, then the next waiting one is queued again
            callback()
    assert len(released) >= 1
    assert [status(u) for u in uploads] == ["processed"] * 4
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 4.0}


@pytest.fixture
def tasks_sent(monkeypatch):
    """The ids whose processing task was sent (and not run)."""
    sent = []
    monkeypatch.setattr(queue, "process_upload", sent.append)
    return sent


@pytest.mark.parametrize("sandbox", [False, True])
def test_an_upload_behind_a_queued_one_sends_no_task_the_batch_takes_it(
        send, calls_token, calls_integration, owner, tasks_sent, sandbox, django_capture_on_commit_callbacks):
    services.set_sandbox(calls_integration, owner, sandbox)
    uploads = [send(calls_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": n}]) for n in (1, 2, 3)]
    assert tasks_sent == [uploads[0].pk]  # the first one's task is still in the queue: the others go without
    with django_capture_on_commit_callbacks(execute=True):
        processing.process_upload(uploads[0].pk)
    assert [status(u) for u in uploads] == ["processed"] * 3
    assert tasks_sent == [uploads[0].pk]  # nothing was left queued
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 3.0}


@pytest.mark.parametrize("sandbox", [False, True])
def test_a_batch_that_stops_short_sends_the_task_of_the_oldest_one_left(
        send, calls_token, calls_integration, owner, tasks_sent, sandbox, monkeypatch,
        django_capture_on_commit_callbacks):
    monkeypatch.setattr(processing, "BATCH_UPLOADS", 2)
    services.set_sandbox(calls_integration, owner, sandbox)
    uploads = [send(calls_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": n}]) for n in (1, 2, 3, 4, 5)]
    broken = uploads[3]
    broken.file.storage.delete(broken.file.name)
    assert tasks_sent == [uploads[0].pk]
    with django_capture_on_commit_callbacks(execute=True):
        processing.process_upload(uploads[0].pk)  # a batch of two
    assert [status(u) for u in uploads] == ["processed", "processed", "queued", "queued", "queued"]
    assert tasks_sent == [uploads[0].pk, uploads[2].pk]
    with django_capture_on_commit_callbacks(execute=True):
        processing.process_upload(uploads[2].pk)  # the third, then the broken one ends the batch
    assert [status(u) for u in uploads][2:4] == ["processed", "failed"]
    assert tasks_sent[-1] == uploads[4].pk  # the last one is not left without a task
    with django_capture_on_commit_callbacks(execute=True):
        processing.process_upload(uploads[4].pk)
    # Out of Sandbox Mode it waits behind the failed one; in Sandbox Mode nothing holds it.
    assert status(uploads[4]) == ("processed" if sandbox else "waiting")


def test_in_sandbox_a_backlog_is_batched_too_and_a_failure_halts_nothing(send, calls_token, calls_integration):
    first, second, broken, last = [
        send(calls_token, [{"email": f"u{n}@x.com", "date": "8/16/2016", "calls": n}], run=False) for n in (1, 2, 3, 4)]
    broken.file.storage.delete(broken.file.name)
    for callback in first.pending:  # one batch: the first two, then the broken one ends it
        callback()
    assert [status(u) for u in (first, second, broken, last)] == ["processed", "processed", "failed", "queued"]
    for upload in (second, broken, last):  # their own tasks: the last one is not held by the failure
        for callback in upload.pending:
            callback()
    assert [status(u) for u in (first, second, broken, last)] == ["processed", "processed", "failed", "processed"]


# --- Writes that replace: re-sending the same file ---------------------------------------------------------


def test_resending_replaces_values_small_and_large(send, calls_token, calls_integration):
    small = [{"email": "ann@x.com", "date": "8/16/2016", "calls": 2}]
    send(calls_token, small)
    send(calls_token, small)
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 2.0}

    days = [datetime.date(2016, 1, 1) + datetime.timedelta(days=n) for n in range(COPY_THRESHOLD // 20 + 5)]
    large = [{"email": f"user{u}@x.com", "date": f"{d.month}/{d.day}/{d.year}", "calls": u + d.day}
             for u in range(20) for d in days]
    assert len(large) > COPY_THRESHOLD  # PostgreSQL: COPY; SQLite: one prepared statement over every row
    first = send(calls_token, large)
    assert status(first) == "processed" and first.values_written == len(large)
    changed = [dict(r, calls=r["calls"] * 10) for r in large]
    again = send(calls_token, changed)
    assert status(again) == "processed" and again.values_written == len(large)
    got = values(calls_integration)
    assert len(got) == len(large) + 1
    assert got[("calls", "user3@x.com", "2016-01-05")] == (3 + 5) * 10
    assert MetricValue.objects.filter(integration=calls_integration, upload=again).count() == len(large)


def test_a_task_run_twice_writes_once(send, calls_token, calls_integration, owner):
    services.set_sandbox(calls_integration, owner, False)
    upload = send(calls_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": 3}], run=False)
    for callback in upload.pending:
        callback()
    assert processing.process_upload(upload.pk) is None
    Upload.objects.filter(pk=upload.pk).update(status="processing")  # as if its worker had died after the write
    assert processing.process_upload(upload.pk).status == "processed"
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 3.0}


# --- Outbound: the pooled session and a private CA --------------------------------------------------------


def test_the_pooled_session_trusts_a_private_ca_only_through_the_setting(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ignored.pem"))
    exchange._sessions.clear()
    assert exchange.shared_session().verify is True  # the environment is not read
    assert exchange.shared_session() is exchange.shared_session()  # one per worker process, reused
    settings.PORTAL_OUTBOUND_CA_BUNDLE = str(tmp_path / "vendor-ca.pem")
    exchange._sessions.clear()
    assert exchange.shared_session().verify == str(tmp_path / "vendor-ca.pem")
    exchange._sessions.clear()


def test_an_integration_row_lock_does_not_hold_new_uploads_back(calls_integration):
    """Processing locks its integration FOR NO KEY UPDATE: purge and other processing wait for it, a
    new upload's row does not (on PostgreSQL; SQLite has one lock for everything)."""
    with CaptureQueriesContext(connection) as queries:
        processing.release_next_upload(calls_integration.pk)
    if connection.vendor == "postgresql":
        assert any("FOR NO KEY UPDATE" in q["sql"] for q in queries.captured_queries)
    assert Integration.objects.filter(pk=calls_integration.pk).exists()
