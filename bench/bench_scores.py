"""Scores benchmark: a month of activity scores for a 500-account tenant.

The tenant has 500 accounts (50 managers of 10 reports each, 20 groups of 25 members), a
scorecard of two activity metrics and one objective, and a month of values: 500 × 30 days × 3
metrics = 45,000 metric values (written straight into the table: bench_intake.py measures the
intake). Measured, median of RUNS, on the database of the environment (DATABASE_URL; without
it a SQLite file of its own, var/bench-scores.sqlite3):

  (a) scoring.compute_scores for period=month: one score per account, manager and group;
  (b) GET /api/v3/activity-score?period=month&limit=1000 through Django's test client: token,
      throttle, compute, serialise every row;
  (c) scoring.compute_scores for period=day over the month (30 periods × 570 entities);
  (d) the alternative, scores kept up to date after each upload: writing the month's 17,100
      daily scores to a table (what each processed upload would rewrite), and reading one
      month's precomputed scores back for the API.

Last line: `RESULT month_scores_ms=<b> compute_month_ms=<a> compute_daily_month_ms=<c>
store_daily_ms=<d write> read_stored_ms=<d read>`. Target: (b) well under a second.
"""

import datetime
import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{BASE_DIR / 'var' / 'bench-scores.sqlite3'}"

TENANT = "bench-scores"
ACCOUNTS, MANAGERS, GROUPS, DAYS = 500, 50, 20, 30
FIRST_DAY = datetime.date(2026, 10, 1)
RUNS = 7


def timed(function, runs=RUNS):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def setup():
    import random

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from integrations import services
    from integrations.models import ApiToken
    from integrations.protocols.public_api.models import Scorecard, ScorecardEntry
    from portal.models import Membership, Tenant
    from uploads.models import Account, Group, MetricValue

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    Tenant.objects.filter(slug=TENANT).delete()
    tenant = Tenant.objects.create(slug=TENANT, name="Bench scores")
    user, _ = get_user_model().objects.get_or_create(username="bench-scores")
    Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": Membership.Role.OWNER})
    integration = services.create_integration(
        tenant, user, name="Activity", data_type="activity", data_format="csv",
        field_keys=["email", "date", "calls", "talk_minutes", "deals"], user_key="email", date_key="date",
        metrics=[{"name": n, "source_key": n, "aggregation": "sum"} for n in ("calls", "talk_minutes", "deals")])
    services.set_sandbox(integration, user, False)
    metrics = {m.name: m for m in integration.metrics.all()}
    card = Scorecard.objects.create(tenant=tenant)
    for name, kind, weight, goals in (("calls", "activity", 2, (40, 200, 800)),
                                      ("talk_minutes", "activity", 1, (120, 600, 2400)),
                                      ("deals", "objective", 1, (1, 5, 20))):
        ScorecardEntry.objects.create(scorecard=card, metric=metrics[name], kind=kind, weight=weight,
                                      goal_day=goals[0], goal_week=goals[1], goal_month=goals[2])

    Account.objects.bulk_create([Account(tenant=tenant, email=f"user{n}@example.com", username=f"user{n}")
                                 for n in range(ACCOUNTS)])
    accounts = list(Account.objects.filter(tenant=tenant).order_by("id"))
    managers, reps = accounts[:MANAGERS], accounts[MANAGERS:]
    for i, rep in enumerate(reps):
        rep.manager = managers[i % MANAGERS]
    Account.objects.bulk_update(reps, ["manager"])
    Group.objects.bulk_create([Group(tenant=tenant, name=f"Team {n}") for n in range(GROUPS)])
    groups = list(Group.objects.filter(tenant=tenant).order_by("id"))
    Account.groups.through.objects.bulk_create([
        Account.groups.through(account_id=a.pk, group_id=groups[i % GROUPS].pk) for i, a in enumerate(accounts)])

    rng = random.Random(2026)
    values = [MetricValue(tenant=tenant, integration=integration, metric=metric, account=account,
                          date=FIRST_DAY + datetime.timedelta(days=d), value=rng.uniform(0, 2) * scale)
              for account in accounts for d in range(DAYS)
              for metric, scale in ((metrics["calls"], 40), (metrics["talk_minutes"], 120), (metrics["deals"], 1))]
    MetricValue.objects.bulk_create(values, batch_size=5000)
    _, token = services.issue_api_token(tenant, user, "bench", ApiToken.Scope.READ)
    return tenant, integration, token, len(values)


def main():
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from integrations.protocols.public_api import scoring
    from integrations.protocols.public_api.models import Pull, PulledScore
    from integrations.protocols.public_api.throttling import ActivityScoreThrottle

    started = time.perf_counter()
    tenant, integration, token, count = setup()
    print(f"database: {connection.vendor}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{ACCOUNTS} accounts, {MANAGERS} managers, {GROUPS} groups, {count:,} values over {DAYS} days "
          f"(set up in {time.perf_counter() - started:.1f} s)", flush=True)
    day = FIRST_DAY + datetime.timedelta(days=14)

    a, table = timed(lambda: scoring.compute_scores(tenant.pk, "activity", "month", day))
    print(f"(a) compute, period=month: {a:.1f} ms for {len(table)} scores", flush=True)

    client = Client()
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def request():
        ActivityScoreThrottle().reset(tenant.pk)  # the benchmark makes more calls than a minute allows
        response = client.get("/api/v3/activity-score", {"period": "month", "date": day.isoformat(),
                                                         "limit": 1000}, headers=headers)
        assert response.status_code == 200, response.content[:300]
        return response

    request()  # warm: imports, first connection
    b, response = timed(request)
    print(f"(b) GET /api/v3/activity-score?period=month&limit=1000: {b:.1f} ms, {len(response.content):,} bytes, "
          f"{response.json()['count']} rows", flush=True)

    c, daily = timed(lambda: scoring.compute_scores(tenant.pk, "activity", "day", FIRST_DAY,
                                                    FIRST_DAY + datetime.timedelta(days=DAYS - 1)), runs=3)
    print(f"(c) compute, period=day over the month: {c:.1f} ms for {len(daily)} scores", flush=True)

    # (d) Kept up to date instead: each processed upload would rewrite its days' scores.
    pull = Pull.objects.create(tenant=tenant, integration=integration, period="day", period_start=FIRST_DAY)
    rows = list(daily)

    def store():
        PulledScore.objects.filter(integration=integration).delete()
        PulledScore.objects.bulk_create([
            PulledScore(integration=integration, pull=pull, kind="activity", entity_type=r["entity_type"],
                        entity_id=r["entity_id"], name=r["name"], period="day", period_start=r["period_start"],
                        score=r["score"]) for r in rows], batch_size=2000)

    d_write, _ = timed(store, runs=3)
    month_rows = [PulledScore(integration=integration, pull=pull, kind="activity", entity_type=r["entity_type"],
                              entity_id=r["entity_id"], name=r["name"], period="month",
                              period_start=r["period_start"], score=r["score"]) for r in table]
    PulledScore.objects.bulk_create(month_rows)
    d_read, stored = timed(lambda: list(PulledScore.objects.filter(
        integration=integration, period="month", period_start=table.starts[0]).values(
        "entity_type", "entity_id", "name", "score")))
    print(f"(d) kept up to date: writing the month's {len(rows):,} daily scores {d_write:.1f} ms; reading a "
          f"stored month ({len(stored)} scores) {d_read:.1f} ms", flush=True)
    print(f"RESULT month_scores_ms={b:.1f} compute_month_ms={a:.1f} compute_daily_month_ms={c:.1f} "
          f"store_daily_ms={d_write:.1f} read_stored_ms={d_read:.1f}", flush=True)


if __name__ == "__main__":
    main()
