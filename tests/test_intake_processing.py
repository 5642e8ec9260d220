"""Processing uploads into metric values: aggregation, replacement, idempotence, sandbox, purge, order."""

import datetime
import json
import os

import pytest
from django.urls import reverse

from integrations import services
from integrations.models import Integration
from uploads import processing, tasks
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls_token(calls_integration, owner):
    return services.regenerate_integration_token(calls_integration, owner)


@pytest.fixture
def send(client, django_capture_on_commit_callbacks):
    """POST records to the data endpoint the way a vendor would; processing runs as the commit ends."""

    def send(token, records, data_type="calls", run=True):
        body = json.dumps(records) if not isinstance(records, (str, bytes)) else records
        with django_capture_on_commit_callbacks(execute=run) as callbacks:
            response = client.post(f"/api/v1/data/{data_type}/", data=body, content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Token {token}")
        assert response.status_code == 201, response.content
        upload = Upload.objects.get(pk=response.json()["id"])
        upload.pending = callbacks  # what a worker would run, when run=False
        return upload

    return send


def values(integration=None):
    rows = MetricValue.objects.all()
    if integration is not None:
        rows = rows.filter(integration=integration)
    return {(v.metric.name, v.account.email, v.date.isoformat()): v.value
            for v in rows.select_related("metric", "account")}


CALLS = [
    {"email": "ann@x.com", "date": "8/16/2016", "calls": "3"},
    {"email": "ANN@x.com", "date": "8/16/2016", "calls": 4},
    {"email": "bob@x.com", "date": "8/16/2016", "calls": 1.5},
    {"email": "bob@x.com", "date": "8/17/2016", "calls": ""},  # no value: not counted
]


def test_values_are_aggregated_per_account_date_metric(send, calls_token, calls_integration):
    upload = send(calls_token, CALLS)
    upload.refresh_from_db()
    assert upload.status == "processed"
    assert upload.records == 4 and upload.values_written == 2
    assert upload.started_at <= upload.finished_at
    assert values() == {("calls", "ann@x.com", "2016-08-16"): 7.0, ("calls", "bob@x.com", "2016-08-16"): 1.5}
    assert sorted(Account.objects.values_list("email", flat=True)) == ["ann@x.com", "bob@x.com"]


def test_each_aggregation(send, calls_token, calls_integration):
    for name, how in [("most", "max"), ("least", "min"), ("latest", "last"), ("records", "count")]:
        calls_integration.metrics.create(name=name, source_key="calls", aggregation=how)
    send(calls_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": n} for n in (5, "9", 2, " 4 ")])
    got = {name: value for (name, _, _), value in values().items()}
    assert got == {"calls": 20.0, "most": 9.0, "least": 2.0, "latest": 4.0, "records": 4.0}


def test_the_same_file_sent_twice_does_not_double_count(send, calls_token):
    first = send(calls_token, CALLS)
    second = send(calls_token, CALLS)
    assert values() == {("calls", "ann@x.com", "2016-08-16"): 7.0, ("calls", "bob@x.com", "2016-08-16"): 1.5}
    assert MetricValue.objects.count() == 2
    assert set(MetricValue.objects.values_list("upload", flat=True)) == {second.pk}
    first.refresh_from_db()
    assert first.values_written == 2


def test_sending_new_rows_replaces_the_values_they_cover(send, calls_token):
    send(calls_token, CALLS)
    send(calls_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": 1}])
    assert values() == {("calls", "ann@x.com", "2016-08-16"): 1.0, ("calls", "bob@x.com", "2016-08-16"): 1.5}


def test_the_task_run_twice_writes_once(send, calls_token):
    upload = send(calls_token, CALLS)
    before = list(MetricValue.objects.values_list("id", "value", "updated_at"))
    assert tasks.process_upload.delay(upload.pk).get() is None  # already processed: nothing to do
    assert list(MetricValue.objects.values_list("id", "value", "updated_at")) == before


def test_a_worker_that_died_mid_way_leaves_it_for_the_next(send, calls_token):
    """acks_late: the task is delivered again; the claim a dead worker left is taken over."""
    upload = send(calls_token, CALLS, run=False)
    # The dead worker had claimed it, and its transaction rolled back: nothing was written.
    Upload.objects.filter(pk=upload.pk).update(status="processing")
    assert tasks.process_upload.delay(upload.pk).get() == "processed"
    assert tasks.process_upload.delay(upload.pk).get() is None
    assert len(values()) == 2 and Account.objects.count() == 2


def test_records_but_no_metrics_says_so(send, calls_token, calls_integration):
    calls_integration.metrics.all().delete()
    upload = send(calls_token, CALLS)
    upload.refresh_from_db()
    assert upload.status == "processed" and upload.values_written == 0 and upload.records == 4
    assert upload.message == "records received, no metrics configured"
    assert MetricValue.objects.count() == 0


def test_known_accounts_are_reused_and_unknown_ones_created_once(send, calls_token, tenant, other_tenant):
    ann = Account.objects.create(tenant=tenant, email="ann@x.com")
    Account.objects.create(tenant=other_tenant, email="bob@x.com")  # another tenant's Bob is not ours
    send(calls_token, CALLS)
    assert MetricValue.objects.get(account__email="ann@x.com").account == ann
    assert Account.objects.filter(tenant=tenant).count() == 2
    assert MetricValue.objects.get(account__email="bob@x.com").account.tenant == tenant


def test_sandbox_values_stay_inside_their_integration(send, calls_token, calls_integration, tenant, owner,
                                                      client, api_token):
    """The integration's own values are listed with it; the tenant-wide read-back leaves them out."""
    live = services.create_integration(tenant, owner, name="Live", data_type="live", data_format="json",
                                       field_keys=["email", "date", "calls"],
                                       metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
    services.set_sandbox(live, owner, False)
    live_token = services.regenerate_integration_token(live, owner)
    sandboxed = send(calls_token, CALLS)
    production = send(live_token, [{"email": "ann@x.com", "date": "8/16/2016", "calls": 10}], data_type="live")
    assert sandboxed.sandbox is True and production.sandbox is False
    assert values(calls_integration) == {("calls", "ann@x.com", "2016-08-16"): 7.0,
                                         ("calls", "bob@x.com", "2016-08-16"): 1.5}
    assert values(live) == {("calls", "ann@x.com", "2016-08-16"): 10.0}

    def listed(**query):
        response = client.get("/api/v3/metric-values/", query, HTTP_AUTHORIZATION=f"Token {api_token}")
        assert response.status_code == 200, response.content
        body = response.json()
        return sorted(row["value"] for row in (body["results"] if isinstance(body, dict) else body))

    assert listed() == [10.0]
    assert listed(data_type="calls") == [1.5, 7.0]
    # Kept through the switch, they count from then on (seed 000: unless purged).
    services.set_sandbox(Integration.objects.get(pk=calls_integration.pk), owner, False)
    assert listed() == [1.5, 7.0, 10.0]


def test_purge_after_uploads_deletes_values_and_files(send, calls_token, calls_integration, owner_client, tenant,
                                                      django_capture_on_commit_callbacks):
    upload = send(calls_token, CALLS)
    path = upload.file.path
    assert os.path.exists(path)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("integration_purge", args=[tenant.slug, calls_integration.pk]))
    upload.refresh_from_db()
    assert upload.status == "purged" and MetricValue.objects.count() == 0 and not os.path.exists(path)
    # A late duplicate of its task finds nothing to do.
    assert tasks.process_upload.delay(upload.pk).get() is None
    assert MetricValue.objects.count() == 0


def test_purge_while_an_upload_waits_for_its_worker(send, calls_token, calls_integration, owner_client, tenant,
                                                    django_capture_on_commit_callbacks):
    """Arrived before the purge: purged whole, never processed. Arrived after: processed whole."""
    before = send(calls_token, CALLS, run=False)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("integration_purge", args=[tenant.slug, calls_integration.pk]))
    for callback in before.pending:  # the worker gets to it only now
        callback()
    before.refresh_from_db()
    assert before.status == "purged" and before.values_written == 0
    assert MetricValue.objects.count() == 0
    after = send(calls_token, CALLS)
    after.refresh_from_db()
    assert after.status == "processed" and MetricValue.objects.count() == 2


def test_in_sandbox_a_failed_upload_does_not_halt_others(send, calls_token, calls_integration):
    first = send(calls_token, CALLS, run=False)
    first.file.storage.delete(first.file.name)  # its stored file is lost before processing
    for callback in first.pending:
        callback()
    second = send(calls_token, CALLS)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "failed" and first.errors[0]["id"] == "import_transform_data"
    assert second.status == "processed"


def test_out_of_sandbox_uploads_wait_behind_a_failed_one_and_go_in_order(send, calls_token, calls_integration,
                                                                         owner, django_capture_on_commit_callbacks):
    services.set_sandbox(calls_integration, owner, False)
    first = send(calls_token, CALLS, run=False)
    # The Data Format changes before the worker gets to it: the file no longer matches.
    services.update_integration(Integration.objects.get(pk=calls_integration.pk), owner,
                                {"field_keys": ["email", "date", "calls", "region"]})
    for callback in first.pending:
        callback()
    first.refresh_from_db()
    assert first.status == "failed"
    assert first.errors[0]["column"] == "region" and first.errors[0]["id"] == "import_transform_data"

    rows = [{"email": "ann@x.com", "date": "8/16/2016", "calls": 1, "region": "north"}]
    second = send(calls_token, rows)
    third = send(calls_token, [dict(rows[0], calls=2)])
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.status, third.status) == ("waiting", "waiting")
    assert MetricValue.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        processing.skip_upload(first, owner)
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.status, third.status) == ("processed", "processed")
    # Arrival order: the third upload's value is the one that stays.
    assert values() == {("calls", "ann@x.com", "2016-08-16"): 2.0}


def test_waiting_uploads_are_released_when_sandbox_goes_off(send, calls_token, calls_integration, owner,
                                                       django_capture_on_commit_callbacks):
    """Uploads held behind a failure that was skipped are queued in arrival order."""
    services.set_sandbox(calls_integration, owner, False)
    waiting = send(calls_token, CALLS, run=False)
    Upload.objects.filter(pk=waiting.pk).update(status="waiting")
    services.set_sandbox(Integration.objects.get(pk=calls_integration.pk), owner, True)
    with django_capture_on_commit_callbacks(execute=True):
        services.set_sandbox(Integration.objects.get(pk=calls_integration.pk), owner, False)
    waiting.refresh_from_db()
    assert waiting.status == "processed"
    assert processing.release_next_upload(calls_integration.pk) is None


def test_many_rows_are_written_set_based(send, calls_token, django_assert_max_num_queries):
    records = [{"email": f"user{i % 50}@x.com", "date": f"8/{i // 50 % 28 + 1}/2016", "calls": i}
               for i in range(5000)]
    upload = send(calls_token, records, run=False)
    with django_assert_max_num_queries(25):
        for callback in upload.pending:
            callback()
    upload.refresh_from_db()
    assert upload.values_written == 50 * 28 == MetricValue.objects.count()
    expected = sum(i for i in range(5000) if i % 50 == 7 and i // 50 % 28 == 3)
    assert MetricValue.objects.get(account__email="user7@x.com", date=datetime.date(2016, 8, 4)).value == expected
