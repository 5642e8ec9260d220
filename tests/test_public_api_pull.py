"""Reference 001 outbound: pulls of a vendor's accounts, groups and scores.

Against two real servers: the portal's own 001 API (pytest-django's live server) and a
pytest-httpserver vendor that throttles as the seed says. Where a pull must wait, the tasks go
to an in-memory broker that no worker reads, and the test plays the worker: it travels to each
task's ETA (time-machine) and runs it. So the waits are Celery countdowns, never sleeps.
"""

import datetime
import json

import pytest
import time_machine
from celery.signals import before_task_publish
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from kombu import pools
from werkzeug import Response

from integrations import services
from integrations.models import ApiToken
from integrations.protocols.public_api import pulls, tasks
from integrations.protocols.public_api.models import Pull, PulledAccount, PulledGroup, PulledScore, Scorecard, \
    ScorecardEntry
from integrations.protocols.public_api.throttling import ActivityScoreThrottle, ObjectiveScoreThrottle
from portal.celery import app as celery_app
from uploads.intake import receive
from uploads.models import CallLog

pytestmark = pytest.mark.django_db

VENDOR_TOKEN = "vendor-Secret-3c9a7f1be24d"


@pytest.fixture(autouse=True)
def _vendor_network(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.PORTAL_OUTBOUND_READ_TIMEOUT = 5


def outbound(tenant, owner, endpoint, token=VENDOR_TOKEN, **settings):
    integration = services.create_integration(
        tenant, owner, name="Vendor scores", protocol="public_api", direction="outbound", endpoint_url=endpoint,
        credentials={"api_token": token}, **settings)
    services.set_sandbox(integration, owner, False)
    return integration


def assert_no_secret(*texts):
    stored = [json.dumps(list(CallLog.objects.values()), default=str),
              json.dumps(list(Pull.objects.values("message")), default=str)]
    for text in stored + list(texts):
        assert VENDOR_TOKEN not in text


# --- Against the portal's own API -------------------------------------------------------------


@pytest.fixture
def portal_data(tenant, owner, activity_integration, django_capture_on_commit_callbacks):
    """The tenant's directory, scorecard and two days of values, all through the intake."""
    people = services.create_integration(tenant, owner, name="People", protocol="public_api", direction="inbound")
    services.set_sandbox(activity_integration, owner, False)
    metrics = {m.name: m for m in activity_integration.metrics.all()}
    card = Scorecard.objects.create(tenant=tenant)
    ScorecardEntry.objects.create(scorecard=card, metric=metrics["calls"], kind="activity", weight=1,
                                  goal_day=10, goal_week=50, goal_month=200)
    ScorecardEntry.objects.create(scorecard=card, metric=metrics["deals"], kind="objective", weight=1,
                                  goal_day=1, goal_week=4, goal_month=16)
    with django_capture_on_commit_callbacks(execute=True):
        receive(people, b"email,username,manager,groups,manages\nmaria@yourcompany.com,maria,,,East\n"
                        b"jason@yourcompany.com,jason,maria,East,\nlee@yourcompany.com,lee,maria,East,\n",
                content_type="text/csv", channel="api")
        receive(activity_integration, b"email,date,calls,talk_minutes,deals\njason@yourcompany.com,11/2/2026,5,1,1\n"
                                      b"lee@yourcompany.com,11/2/2026,20,1,0\n", content_type="text/csv", channel="api")
    for throttle in (ActivityScoreThrottle(), ObjectiveScoreThrottle()):
        throttle.reset(tenant.pk)


@pytest.mark.django_db(transaction=True)
def test_a_pull_reads_the_portals_own_api_page_by_page(live_server, tenant, owner, portal_data, owner_client):
    _, token = services.issue_api_token(tenant, owner, "pull", ApiToken.Scope.READ)
    integration = outbound(tenant, owner, f"{live_server.url}/api/v3", token=token, page_size=2)
    tab = reverse("public_api_pulled", args=[tenant.slug, integration.pk])
    response = owner_client.post(tab, {"period": "day", "date": "2026-11-02"})  # eager tasks: it runs now
    assert response.status_code == 302

    pull = Pull.objects.get(integration=integration)
    assert pull.status == Pull.Status.DONE, pull.message
    assert pull.counts == {"accounts": 3, "groups": 1, "activity": 5, "objective": 5}
    assert sorted(PulledAccount.objects.values_list("username", "manager")) == [
        ("jason", "maria"), ("lee", "maria"), ("maria", "")]
    group = PulledGroup.objects.get()
    assert (group.name, group.members, group.managers) == ("East", ["jason", "lee"], ["maria"])
    activity = {(s.entity_type, s.entity_id): s.score for s in PulledScore.objects.filter(kind="activity")}
    assert activity[("individual", "jason")] == 50.0 and activity[("individual", "lee")] == 150.0
    assert activity[("manager", "maria")] == 100.0 and activity[("group", group.group_id)] == 100.0
    assert PulledScore.objects.get(kind="objective", entity_id="jason").score == 100.0

    calls = list(CallLog.objects.filter(integration=integration).order_by("id"))
    # 2 pages of accounts, 1 of groups, 3 and 3 of scores: pagination followed, each exchange logged.
    assert [c.url.split("/api/v3/")[1].split("?")[0] for c in calls] == [
        "account", "account", "group", "activity-score", "activity-score", "activity-score",
        "objective-score", "objective-score", "objective-score"]
    assert all(c.status_code == 200 and c.request_headers["Authorization"] == "[redacted]" for c in calls)
    assert "period=day" in calls[3].url and "date=2026-11-02" in calls[3].url and calls[0].upload_id is None

    page = owner_client.get(tab).content.decode()
    assert "Done" in page and "jason" in page and "East" in page and "activity-score" in page
    scores_csv = owner_client.get(reverse("public_api_pulled_csv", args=[tenant.slug, integration.pk, "scores"]))
    lines = scores_csv.content.decode().splitlines()
    assert lines[0] == "period,period_start,entity_type,entity_id,name,kind,score" and len(lines) == 11
    accounts_csv = owner_client.get(reverse("public_api_pulled_csv", args=[tenant.slug, integration.pk, "accounts"]))
    assert "jason,jason@yourcompany.com,maria," in accounts_csv.content.decode()
    assert token not in page + scores_csv.content.decode()

    # A second pull replaces the accounts and groups it read, and updates the scores of the period.
    owner_client.post(tab, {"period": "day", "date": "2026-11-02"})
    assert Pull.objects.filter(status="done").count() == 2
    assert PulledAccount.objects.count() == 3 and PulledScore.objects.count() == 10


def test_an_outbound_public_api_integration_sends_no_files(owner_client, tenant, owner):
    integration = outbound(tenant, owner, "https://vendor.example.com/api/v3/")
    response = owner_client.post(reverse("upload_create", args=[tenant.slug]), {
        "integration": integration.pk, "file": SimpleUploadedFile("a.csv", b"email\na@b.c\n", "text/csv")})
    assert response.status_code == 400 and "cannot send" in response.content.decode()


# --- Against a vendor that throttles ------------------------------------------------------------


@pytest.fixture
def broker_without_worker():
    """Tasks go to an in-memory broker nobody reads; returns the run_pull messages as they are sent."""
    sent = []

    def record(sender=None, headers=None, body=None, **kwargs):
        if sender == tasks.run_pull.name:
            sent.append({"args": tuple(body[0]), "eta": headers.get("eta")})

    saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = "memory://", False
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def play_worker(sent, limit=50):
    """Run the queued steps in order, each at its ETA; returns the countdowns (seconds) they asked for."""
    waits, done = [], 0
    clock = datetime.datetime.now(datetime.timezone.utc)
    while done < len(sent) and done < limit:
        message = sent[done]
        done += 1
        if message["eta"]:
            eta = datetime.datetime.fromisoformat(message["eta"])
            waits.append(round((eta - clock).total_seconds()))
            clock = eta
        with time_machine.travel(clock, tick=False):
            tasks.run_pull.apply(args=message["args"])
    return waits


class ThrottlingVendor:
    """A vendor's 001 API that allows 30 score calls a minute per API, and refuses the very first
    activity call with 429 and Retry-After: 7."""

    def __init__(self, rows=40):
        self.rows = rows
        self.calls = {"activity-score": [], "objective-score": []}
        self.refused = 0

    def __call__(self, request):
        if request.headers.get("Authorization") != f"Token {VENDOR_TOKEN}":
            return Response(json.dumps({"detail": "Invalid token."}), status=401, content_type="application/json")
        api = request.path.rsplit("/", 1)[1]
        if api == "account":
            return self.page([{"id": 1, "username": "jason", "email": "jason@vendor.example", "manager": "maria",
                               "groups": [7]}, {"id": 2, "username": "maria", "email": "maria@vendor.example"}])
        if api == "group":
            return self.page([{"id": 7, "group_id": "7", "name": "East", "members": ["jason"],
                               "managers": ["maria"]}])
        now = datetime.datetime.now(datetime.timezone.utc).timestamp()
        history = self.calls[api]
        if api == "activity-score" and not history:
            history.append(now)
            self.refused += 1
            return Response("Too Many Requests", status=429, headers={"Retry-After": "7"})
        if len([t for t in history if t > now - 60]) >= 30:
            self.refused += 1
            return Response("Too Many Requests", status=429, headers={"Retry-After": "60"})
        history.append(now)
        offset = int(request.args.get("offset", 0))
        total = self.rows if api == "activity-score" else 2
        rows = [{"entity_id": f"user{n}", "entity_type": "individual", "name": f"user{n}@vendor.example",
                 "score": float(n)} for n in range(offset, min(offset + 1, total))]
        next_url = f"{request.base_url}?{request.query_string.decode().split('&offset=')[0]}&offset={offset + 1}" \
            if offset + 1 < total else None
        return self.page(rows, next_url)

    @staticmethod
    def page(results, next_url=None):
        return Response(json.dumps({"count": len(results), "next": next_url, "previous": None, "results": results}),
                        status=200, content_type="application/json")


def test_a_pull_paces_itself_under_the_limits_and_honours_429_with_countdowns(
        tenant, owner, httpserver, broker_without_worker, django_capture_on_commit_callbacks):
    vendor = ThrottlingVendor(rows=40)
    httpserver.expect_request("/api/v3/account").respond_with_handler(vendor)
    httpserver.expect_request("/api/v3/group").respond_with_handler(vendor)
    httpserver.expect_request("/api/v3/activity-score").respond_with_handler(vendor)
    httpserver.expect_request("/api/v3/objective-score").respond_with_handler(vendor)
    integration = outbound(tenant, owner, httpserver.url_for("/"), page_size=1)

    start = datetime.datetime(2026, 11, 23, 9, 0, 0, tzinfo=datetime.timezone.utc)
    with time_machine.travel(start, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            pull = pulls.start_pull(integration, "test", "day", datetime.date(2026, 11, 22))
        waits = play_worker(broker_without_worker)

    pull.refresh_from_db()
    assert pull.status == Pull.Status.DONE, pull.message
    assert pull.counts == {"accounts": 2, "groups": 1, "activity": 40, "objective": 2}
    assert PulledScore.objects.filter(kind="activity").count() == 40
    # The scripted 429 was waited out for its Retry-After; the limit never made the vendor refuse again.
    assert vendor.refused == 1
    assert waits[:2] == [7, 54]  # Retry-After 7 s, then 30 calls in the minute: wait for the oldest to age out
    history = vendor.calls["activity-score"]
    assert max(sum(1 for t in history if first <= t < first + 60) for first in history) <= 30
    throttled = CallLog.objects.get(integration=integration, status_code=429)
    assert throttled.response_headers["Retry-After"] == "7"
    assert CallLog.objects.filter(integration=integration, url__contains="activity-score").count() == 41
    assert_no_secret()


def test_a_vendor_that_refuses_the_token_fails_the_pull_and_keeps_no_half_list(
        tenant, owner, httpserver, owner_client, django_capture_on_commit_callbacks, caplog):
    httpserver.expect_request("/api/v3/account").respond_with_json(
        {"count": 1, "next": None, "previous": None, "results": [{"id": 1, "username": "jason"}]})
    httpserver.expect_request("/api/v3/group").respond_with_json(
        {"detail": f"Invalid token {VENDOR_TOKEN}."}, status=401)
    integration = outbound(tenant, owner, httpserver.url_for("/api/v3/"))
    with django_capture_on_commit_callbacks(execute=True):
        pull = pulls.start_pull(integration, "test", "week", datetime.date(2026, 11, 18))
    pull.refresh_from_db()
    assert pull.status == Pull.Status.FAILED and "401 at groups" in pull.message and "[redacted]" in pull.message
    assert pull.period_start == datetime.date(2026, 11, 16)  # the Monday
    assert not PulledAccount.objects.exists()
    page = owner_client.get(reverse("public_api_pulled", args=[tenant.slug, integration.pk])).content.decode()
    assert "Failed" in page and "401" in page
    assert_no_secret(page, caplog.text)


def test_the_next_page_on_another_host_is_not_followed(tenant, owner, httpserver, django_capture_on_commit_callbacks):
    httpserver.expect_request("/api/v3/account").respond_with_json(
        {"count": 2, "next": "https://elsewhere.example.com/api/v3/account?offset=1", "previous": None,
         "results": [{"id": 1, "username": "jason"}]})
    integration = outbound(tenant, owner, httpserver.url_for("/"))
    with django_capture_on_commit_callbacks(execute=True):
        pull = pulls.start_pull(integration, "test", "day", datetime.date(2026, 11, 18))
    pull.refresh_from_db()
    assert pull.status == Pull.Status.FAILED and "another host" in pull.message
    assert len(httpserver.log) == 1


def test_a_vendor_that_is_down_is_retried_with_backoff(tenant, owner, httpserver, broker_without_worker,
                                                      django_capture_on_commit_callbacks, settings):
    settings.PORTAL_OUTBOUND_BACKOFF_SECONDS = 10
    httpserver.expect_request("/api/v3/account").respond_with_data("down", status=503)
    integration = outbound(tenant, owner, httpserver.url_for("/"))
    with time_machine.travel(datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.timezone.utc), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            pull = pulls.start_pull(integration, "test", "day", datetime.date(2026, 11, 18))
        waits = play_worker(broker_without_worker)
    pull.refresh_from_db()
    assert pull.status == Pull.Status.FAILED and "Gave up after 5 tries" in pull.message
    assert len(httpserver.log) == 5 and len(waits) == 4 and 8 <= waits[0] <= 12 and waits[3] >= 64


def test_scheduled_pulls_start_when_due_and_lost_steps_are_sent_again(tenant, owner, broker_without_worker):
    integration = outbound(tenant, owner, "https://vendor.example.com/api/v3/", schedule="6", period="week")
    sandboxed = outbound(tenant, owner, "https://other.example.com/api/v3/")
    services.set_sandbox(sandboxed, owner, True)  # scheduled pulls run only out of Sandbox Mode
    now = datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.timezone.utc)
    with time_machine.travel(now, tick=False):
        started, resumed = pulls.pull_due()
        assert len(started) == 1 and resumed == []
        pull = Pull.objects.get(pk=started[0])
        assert (pull.integration, pull.period, pull.period_start) == (integration, "week", datetime.date(2026, 11, 16))
        assert pulls.pull_due() == ([], [])  # under way: not started twice
    # Its task was lost (nobody ran it): two minutes after it was due, it is sent again.
    with time_machine.travel(now + datetime.timedelta(minutes=3), tick=False):
        assert pulls.pull_due() == ([], [pull.pk])
    assert [m["args"] for m in broker_without_worker] == [(pull.pk, 1)]  # sent again
    Pull.objects.filter(pk=pull.pk).update(status="done")
    with time_machine.travel(now + datetime.timedelta(hours=5), tick=False):
        assert pulls.pull_due() == ([], [])
    with time_machine.travel(now + datetime.timedelta(hours=6, minutes=1), tick=False):
        assert len(pulls.pull_due()[0]) == 1
