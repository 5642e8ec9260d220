"""Reference 001 inbound: /api/v3/account, /group, /activity-score and /objective-score.

Data gets in through the front door: files POSTed to a data integration's API endpoint and
processed by the (eager) task; accounts and groups through the import integration's intake.
"""

import datetime
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection

from integrations import services
from integrations.models import ApiToken
from integrations.protocols.public_api.models import Scorecard, ScorecardEntry
from integrations.protocols.public_api.throttling import ActivityScoreThrottle, ObjectiveScoreThrottle
from uploads.intake import receive
from uploads.models import Account, Group

pytestmark = pytest.mark.django_db

BASE_DIR = Path(django_settings.BASE_DIR)


def auth(token):
    return {"Authorization": f"Token {token}", "Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def fresh_throttles(tenant, other_tenant):
    """A shared cache (Redis in CI) outlives test transactions: start each test with no calls counted."""
    for throttle in (ActivityScoreThrottle(), ObjectiveScoreThrottle()):
        throttle.reset(tenant.pk)
        throttle.reset(other_tenant.pk)


@pytest.fixture
def outsider_token(other_tenant, outsider):
    _, token = services.issue_api_token(other_tenant, outsider, "outsider", ApiToken.Scope.READ)
    return token


def send_values(integration, csv_text, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload = receive(integration, csv_text.encode(), content_type="text/csv", channel="api")
    upload.refresh_from_db()
    assert upload.status == "processed", upload.errors
    return upload


@pytest.fixture
def directory(tenant, owner, django_capture_on_commit_callbacks):
    """maria manages jason and lee; jason and lee are in East, maria leads it."""
    integration = services.create_integration(tenant, owner, name="People", protocol="public_api",
                                              direction="inbound")
    send_values(integration, "email,username,manager,groups,manages\n"
                             "maria@yourcompany.com,maria,,,East\n"
                             "jason@yourcompany.com,jason,maria,East,\n"
                             "lee@yourcompany.com,,maria@yourcompany.com,East;Inbound,\n",
                django_capture_on_commit_callbacks)
    return integration


@pytest.fixture
def scored(tenant, owner, activity_integration, directory, django_capture_on_commit_callbacks):
    """A scorecard on the activity integration (out of Sandbox Mode) and a week of values."""
    services.set_sandbox(activity_integration, owner, False)
    metrics = {m.name: m for m in activity_integration.metrics.all()}
    card = Scorecard.objects.create(tenant=tenant)
    ScorecardEntry.objects.create(scorecard=card, metric=metrics["calls"], kind="activity", weight=2,
                                  goal_day=10, goal_week=50, goal_month=200)
    ScorecardEntry.objects.create(scorecard=card, metric=metrics["talk_minutes"], kind="activity", weight=1,
                                  goal_day=60, goal_week=300, goal_month=1200)
    ScorecardEntry.objects.create(scorecard=card, metric=metrics["deals"], kind="objective", weight=1,
                                  goal_day=1, goal_week=4, goal_month=16)
    # Monday 2 and Tuesday 3 November 2026: jason beats his goals (capped at 150 %), lee half meets them.
    send_values(activity_integration, "email,date,calls,talk_minutes,deals\n"
                                      "jason@yourcompany.com,11/2/2026,30,60,2\n"
                                      "jason@yourcompany.com,11/3/2026,10,30,1\n"
                                      "lee@yourcompany.com,11/2/2026,5,30,0\n"
                                      "lee@yourcompany.com,11/3/2026,5,30,1\n", django_capture_on_commit_callbacks)
    return card


def scores(client, token, kind="activity", **query):
    response = client.get(f"/api/v3/{kind}-score", query, headers=auth(token))
    assert response.status_code == 200, response.content
    return {(row["entity_type"], row["entity_id"], row["period_start"]): row for row in response.json()["results"]}


# --- Accounts and groups -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v3/account", "/api/v3/account/"])
def test_the_seeds_example_lists_accounts_without_a_redirect(client, api_token, directory, path):
    response = client.get(path, headers=auth(api_token))
    assert response.status_code == 200  # not a 301 to the other form: curl would not follow it
    body = response.json()
    assert body["count"] == 3 and body["next"] is None
    jason = next(a for a in body["results"] if a["username"] == "jason")
    east = Group.objects.get(name="East")
    assert jason == {**jason, "email": "jason@yourcompany.com", "manager": "maria", "groups": [east.pk],
                     "managed_groups": [], "reports": 0}
    maria = next(a for a in body["results"] if a["username"] == "maria")
    assert maria["reports"] == 2 and maria["managed_groups"] == [east.pk] and maria["manager"] is None


def test_accounts_filter_search_and_page(client, api_token, directory):
    def usernames(**query):
        response = client.get("/api/v3/account", query, headers=auth(api_token))
        assert response.status_code == 200, response.content
        return [a["username"] for a in response.json()["results"]]

    assert usernames() == ["jason", "lee", "maria"]
    assert usernames(search="LE") == ["lee"]
    assert usernames(email="JASON@yourcompany.com") == ["jason"]
    assert usernames(manager="maria") == ["jason", "lee"]
    assert usernames(group=Group.objects.get(name="Inbound").pk) == ["lee"]
    assert usernames(limit=1, offset=1) == ["lee"]
    assert client.get("/api/v3/account?group=east", headers=auth(api_token)).status_code == 400


def test_account_and_group_detail_with_and_without_slash(client, api_token, directory):
    lee = Account.objects.get(email="lee@yourcompany.com")
    for path in (f"/api/v3/account/{lee.pk}", f"/api/v3/account/{lee.pk}/"):
        assert client.get(path, headers=auth(api_token)).json()["username"] == "lee"
    east = Group.objects.get(name="East")
    for path in (f"/api/v3/group/{east.pk}", f"/api/v3/group/{east.pk}/"):
        body = client.get(path, headers=auth(api_token)).json()
        assert body == {"id": east.pk, "group_id": str(east.pk), "name": "East", "members": ["jason", "lee"],
                        "managers": ["maria"]}
    listed = client.get("/api/v3/group?member=lee", headers=auth(api_token)).json()["results"]
    assert [g["name"] for g in listed] == ["East", "Inbound"]
    assert client.get("/api/v3/group/?search=inb", headers=auth(api_token)).json()["count"] == 1


def test_read_only_and_authenticated(client, api_token, directory, tenant, owner):
    assert client.post("/api/v3/account", {}, headers=auth(api_token)).status_code == 405
    assert client.get("/api/v3/account").status_code == 401
    assert client.get("/api/v3/activity-score").status_code == 401
    _, upload_token = services.issue_api_token(tenant, owner, "files", kind=ApiToken.Kind.FILE_UPLOAD)
    assert client.get("/api/v3/account", headers=auth(upload_token)).status_code == 401


def test_usernames_are_made_from_emails_unique_per_tenant(client, api_token, tenant, other_tenant, calls_integration,
                                                          owner, django_capture_on_commit_callbacks):
    Account.objects.create(tenant=tenant, email="someone@else.com", username="jason")
    Account.objects.create(tenant=other_tenant, email="jason@yourcompany.com")  # another tenant: no clash
    services.set_sandbox(calls_integration, owner, False)
    with django_capture_on_commit_callbacks(execute=True):  # processing creates the accounts in bulk
        receive(calls_integration, json.dumps([
            {"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"},
            {"email": "jason@othercompany.com", "date": "8/16/2016", "calls": "1"},
            {"email": "ann@yourcompany.com", "date": "8/16/2016", "calls": "1"},
        ]).encode(), content_type="application/json", channel="api")
    listed = {a["email"]: a["username"] for a in client.get("/api/v3/account", headers=auth(api_token)).json()[
        "results"]}
    assert listed == {"someone@else.com": "jason", "jason@yourcompany.com": "jason@yourcompany.com",
                      "jason@othercompany.com": "jason@othercompany.com", "ann@yourcompany.com": "ann"}
    assert Account.objects.get(tenant=other_tenant).username == "jason"


def test_a_bad_import_stores_nothing_and_says_where(tenant, owner, directory):
    before = list(Account.objects.values_list("email", "username", "manager_id"))
    with pytest.raises(Exception) as refused:
        receive(directory, b"email,username,manager,groups\n"
                           b"new@yourcompany.com,maria,,\n"  # maria's username
                           b"not-an-email,,,\n"
                           b"jason@yourcompany.com,,nobody@x.com,\n", content_type="text/csv", channel="api")
    errors = refused.value.errors
    assert [(e["row"], e["column"]) for e in errors] == [(2, "email")]  # the file's own problems first
    with pytest.raises(Exception) as refused:
        receive(directory, b"email,username,manager\nnew@yourcompany.com,maria,\njason@yourcompany.com,,nobody\n",
                content_type="text/csv", channel="api")
    assert [(e["row"], e["column"], e["id"]) for e in refused.value.errors] == [
        (1, "username", "import_transform_data"), (2, "manager", "import_transform_data")]
    with pytest.raises(Exception) as refused:  # maria would manage jason who would manage maria
        receive(directory, b"email,manager\nmaria@yourcompany.com,jason\n", content_type="text/csv", channel="api")
    assert "goes round" in refused.value.errors[0]["description"]
    assert list(Account.objects.values_list("email", "username", "manager_id")) == before
    assert directory.uploads.count() == 1  # only the first, good file


# --- Scores -------------------------------------------------------------------------------------


def test_activity_scores_of_individuals_managers_and_groups(client, api_token, scored, tenant):
    east, inbound = Group.objects.get(name="East"), Group.objects.get(name="Inbound")
    day = scores(client, api_token, period="day", date="2026-11-02")
    # jason: calls 30/10 → 300 % capped at 150; talk 60/60 → 100 %: (2×150 + 100) / 3
    assert day["individual", "jason", "2026-11-02"]["score"] == pytest.approx(133.33, abs=0.01)
    # lee: calls 5/10 → 50 %; talk 30/60 → 50 %
    assert day["individual", "lee", "2026-11-02"]["score"] == 50.0
    assert day["individual", "maria", "2026-11-02"]["score"] == 0.0  # no values: 0, not missing
    manager = day["manager", "maria", "2026-11-02"]
    assert manager["score"] == pytest.approx((133.333 + 50) / 2, abs=0.01) and manager["members"] == 2
    assert day["group", str(east.pk), "2026-11-02"]["score"] == manager["score"]
    assert day["group", str(east.pk), "2026-11-02"]["name"] == "East"
    assert day["group", str(inbound.pk), "2026-11-02"]["score"] == 50.0
    calls = day["individual", "jason", "2026-11-02"]["metrics"][0]
    assert calls == {"metric": "calls", "data_type": "activity", "weight": 2.0, "goal": 10.0, "value": 30.0,
                     "attainment": 150.0}
    assert len(day) == 3 + 1 + 2  # three individuals, one manager, two groups

    week = scores(client, api_token, period="week", date="2026-11-05")  # Monday 2 to Sunday 8 November
    # jason: calls 40/50 → 80 %, talk 90/300 → 30 %: (160 + 30) / 3
    jason = week["individual", "jason", "2026-11-02"]
    assert jason["score"] == pytest.approx(63.33, abs=0.01) and jason["period_end"] == "2026-11-08"
    month = scores(client, api_token, period="month", date="2026-11-30")
    assert month["individual", "lee", "2026-11-01"]["metrics"][0]["value"] == 10.0

    objective = scores(client, api_token, "objective", period="day", date="2026-11-02", date_to="2026-11-03")
    assert objective["individual", "jason", "2026-11-02"]["score"] == 150.0  # 2 deals / goal 1, capped
    assert objective["individual", "lee", "2026-11-03"]["score"] == 100.0
    assert objective["group", str(inbound.pk), "2026-11-02"]["score"] == 0.0


def test_score_filters_and_errors(client, api_token, scored):
    only = scores(client, api_token, period="day", date="2026-11-02", entity_type="manager")
    assert list(only) == [("manager", "maria", "2026-11-02")]
    only = scores(client, api_token, period="day", date="2026-11-02", entity_id="lee")
    assert list(only) == [("individual", "lee", "2026-11-02")]
    assert client.get("/api/v3/activity-score?period=year", headers=auth(api_token)).status_code == 400
    bad = client.get("/api/v3/activity-score?date=2026-11-05&date_to=2026-11-01", headers=auth(api_token))
    assert bad.status_code == 400 and "date_to" in bad.json()
    assert client.get("/api/v3/activity-score?period=day&date=2020-01-01&date_to=2026-01-01",
                      headers=auth(api_token)).status_code == 400  # more than 400 periods


def test_sandbox_values_never_count(client, api_token, scored, activity_integration, owner):
    services.set_sandbox(activity_integration, owner, True)
    day = scores(client, api_token, period="day", date="2026-11-02")
    assert day["individual", "jason", "2026-11-02"]["score"] == 0.0
    assert day["individual", "jason", "2026-11-02"]["metrics"][0]["value"] == 0.0


def test_a_scorecard_without_objectives_gives_null_objective_scores(client, api_token, scored):
    ScorecardEntry.objects.filter(kind="objective").delete()
    day = scores(client, api_token, "objective", period="day", date="2026-11-02")
    assert {row["score"] for row in day.values()} == {None}


def test_another_tenants_token_sees_nothing_of_this_tenant(client, api_token, outsider_token, scored):
    jason = Account.objects.get(username="jason")
    east = Group.objects.get(name="East")
    assert client.get("/api/v3/account", headers=auth(outsider_token)).json()["count"] == 0
    assert client.get("/api/v3/group", headers=auth(outsider_token)).json()["count"] == 0
    assert client.get(f"/api/v3/account/{jason.pk}", headers=auth(outsider_token)).status_code == 404
    assert client.get(f"/api/v3/group/{east.pk}", headers=auth(outsider_token)).status_code == 404
    for kind in ("activity", "objective"):
        assert scores(client, outsider_token, kind, period="day", date="2026-11-02") == {}
        assert scores(client, outsider_token, kind, period="day", date="2026-11-02", entity_id="jason") == {}


# --- Throttling ---------------------------------------------------------------------------------


def test_31st_call_in_a_minute_is_429_and_the_other_score_api_still_answers(client, api_token, scored, tenant,
                                                                           owner, outsider_token):
    _, second_token = services.issue_api_token(tenant, owner, "second", ApiToken.Scope.READ)
    with time_machine.travel(datetime.datetime(2026, 11, 23, 9, 0, 0, tzinfo=datetime.timezone.utc), tick=False):
        for n in range(30):  # two tokens of one tenant share its quota
            token = api_token if n % 2 else second_token
            assert client.get("/api/v3/activity-score", headers=auth(token)).status_code == 200, n
        refused = client.get("/api/v3/activity-score/", headers=auth(api_token))
        assert refused.status_code == 429
        assert "Too Many Requests" in refused.content.decode() and refused["Retry-After"] == "60"
        assert client.get("/api/v3/activity-score", headers=auth(second_token)).status_code == 429
        # The other score API, the other endpoints and another tenant are not held back.
        assert client.get("/api/v3/objective-score", headers=auth(api_token)).status_code == 200
        for path in ("/api/v3/account", "/api/v3/group", "/api/v3/integrations/", "/api/v3/uploads/"):
            assert client.get(path, headers=auth(api_token)).status_code == 200, path
        assert client.get("/api/v3/activity-score", headers=auth(outsider_token)).status_code == 200
    with time_machine.travel(datetime.datetime(2026, 11, 23, 9, 0, 45, tzinfo=datetime.timezone.utc), tick=False):
        assert client.get("/api/v3/activity-score", headers=auth(api_token))["Retry-After"] == "15"
    with time_machine.travel(datetime.datetime(2026, 11, 23, 9, 1, 0, 1000, tzinfo=datetime.timezone.utc),
                             tick=False):
        assert client.get("/api/v3/activity-score", headers=auth(api_token)).status_code == 200


def test_a_call_refused_by_the_minute_limit_does_not_use_up_the_days_quota(client, api_token, scored, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "activity_score": "3/minute", "activity_score_day": "5/day"}}
    start = datetime.datetime(2026, 11, 23, 9, 0, 0, tzinfo=datetime.timezone.utc)

    def call(seconds_later):
        with time_machine.travel(start + datetime.timedelta(seconds=seconds_later), tick=False):
            return client.get("/api/v3/activity-score", headers=auth(api_token))

    assert [call(0).status_code for _ in range(3)] == [200] * 3
    assert [call(1).status_code for _ in range(10)] == [429] * 10  # refused by the minute limit
    # A minute later two calls are left of the day's five, not none.
    assert [call(61).status_code for _ in range(2)] == [200, 200]
    refused = call(62)
    assert refused.status_code == 429 and "5 calls a day" in refused.json()["detail"]
    assert int(refused["Retry-After"]) == 86400 - 62


@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_across_processes_sharing_the_cache(live_server, tenant, owner):
    """15 calls from this process (through the live server), 15 from another process (Django's test
    client in a subprocess on the same database and cache): the 31st is refused here."""
    ActivityScoreThrottle().reset(tenant.pk)
    _, token = services.issue_api_token(tenant, owner, "two processes", ApiToken.Scope.READ)
    url = f"{live_server.url}/api/v3/activity-score"
    assert [requests.get(url, headers=auth(token), timeout=10).status_code for _ in range(15)] == [200] * 15
    env = {**os.environ, "DATABASE_URL": _database_url(connection.settings_dict), "PYTHONUNBUFFERED": "1"}
    script = ("import django, json; django.setup()\n"
              "from django.test import Client\n"
              f"c = Client(); print(json.dumps([c.get('/api/v3/activity-score', headers={{'Authorization': "
              f"'Token {token}'}}).status_code for _ in range(16)]))\n")
    other = subprocess.run([sys.executable, "-c", script], cwd=BASE_DIR, env={
        **env, "DJANGO_SETTINGS_MODULE": "portal.settings"}, capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr[-2000:]
    assert json.loads(other.stdout.strip().splitlines()[-1]) == [200] * 15 + [429]
    refused = requests.get(url, headers=auth(token), timeout=10)
    assert refused.status_code == 429 and "Too Many Requests" in refused.text and int(refused.headers["Retry-After"]) > 0
    ActivityScoreThrottle().reset(tenant.pk)


def _database_url(db):
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# --- Schema and demo ----------------------------------------------------------------------------


def test_schema_documents_the_endpoints_with_examples_and_the_429(client):
    schema = client.get("/api/v3/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    for path in ("/api/v3/account", "/api/v3/account/{id}", "/api/v3/group", "/api/v3/group/{id}",
                 "/api/v3/activity-score", "/api/v3/objective-score"):
        assert "get" in paths[path], path
        assert path + "/" not in paths  # the slashed form answers too, but is not listed twice
    activity = paths["/api/v3/activity-score"]["get"]
    assert "429" in activity["responses"] and "Too Many Requests" in json.dumps(activity["responses"]["429"])
    assert "30 calls a minute and 1000 a day" in activity["description"]
    assert {p["name"] for p in activity["parameters"]} >= {"period", "date", "date_to", "entity_type", "entity_id",
                                                           "limit", "offset"}
    assert "examples" in activity["responses"]["200"]["content"]["application/json"]
    assert "examples" in paths["/api/v3/account"]["get"]["responses"]["200"]["content"]["application/json"]
    assert client.get("/api/v3/schema/swagger-ui/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_demo_curl_example_verbatim(live_server):
    """The seed's example, as it is written, with curl, against the demo tenant."""
    out = StringIO()
    call_command("demo", "--json", "--base-url", live_server.url, stdout=out)
    demo = json.loads(out.getvalue())
    entry = next(i for i in demo["integrations"] if i["protocol"] == "public_api")
    assert entry["accounts_url"] == f"{live_server.url}/api/v3/account"
    tenant_id = Account.objects.get(username="jason", tenant__slug="demo").tenant_id
    week_ago = datetime.date.today() - datetime.timedelta(days=7)  # a whole week of the demo's month of values
    ActivityScoreThrottle().reset(tenant_id)
    answer = subprocess.run(
        ["curl", "-s", "-H", f"Authorization: Token {demo['api_token']}", "-H", "Content-Type: application/json",
         entry["accounts_url"]], capture_output=True, text=True, timeout=30)
    accounts = json.loads(answer.stdout)
    # The demo's twelve people (other protocols' demos may add accounts of their own).
    assert {"maria", "tom", "jason", "priya", "ivan"} <= {a["username"] for a in accounts["results"]}
    assert next(a for a in accounts["results"] if a["username"] == "jason")["manager"] == "maria"
    answer = subprocess.run(
        ["curl", "-s", "-H", f"Authorization: Token {demo['api_token']}", "-H", "Content-Type: application/json",
         f"{entry['activity_scores_url']}?period=week&date={week_ago}"], capture_output=True, text=True, timeout=30)
    rows = json.loads(answer.stdout)["results"]
    assert {r["entity_type"] for r in rows} == {"individual", "manager", "group"}
    assert any(r["score"] > 0 for r in rows if r["entity_type"] == "group")
    ActivityScoreThrottle().reset(tenant_id)
