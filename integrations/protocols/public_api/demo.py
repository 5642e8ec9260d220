"""The demo tenant's share of reference 001: accounts and groups imported from a CSV file, a
scorecard on the demo's "activity" integration, and a month of its values, all through the
portal's own intake, so that the score APIs answer non-zero scores at once.

The activity integration leaves Sandbox Mode for it: sandbox values never count in scores.
Idempotent: accounts are imported once, and only the days of the month that have no values
yet are sent.
"""

import datetime
import io
import random

from django.urls import reverse
from django.utils import timezone

from integrations import registry, services
from integrations.models import Integration
from uploads.intake import receive
from uploads.models import Account, MetricValue, Upload
from uploads.processing import process_upload

from .models import Scorecard, ScorecardEntry, ScoreKind

DOMAIN = "yourcompany.com"
MANAGERS = {"maria": "East", "tom": "West"}
REPS = [("jason", "maria", 1.1), ("lee", "maria", 0.9), ("priya", "maria", 1.25), ("sam", "maria", 0.7),
        ("ana", "maria", 1.0), ("kofi", "tom", 0.95), ("mei", "tom", 1.15), ("omar", "tom", 0.8),
        ("lucy", "tom", 1.05), ("ivan", "tom", 0.6)]
INBOUND_REPS = {"jason", "priya", "mei"}  # also in a cross-team group
GOALS = {  # metric: (score, weight, goal per day, per week, per month)
    "calls": (ScoreKind.ACTIVITY, 2.0, 40, 200, 800),
    "talk_minutes": (ScoreKind.ACTIVITY, 1.0, 120, 600, 2400),
    "deals": (ScoreKind.OBJECTIVE, 1.0, 1, 5, 20),
}
DAYS = 30


def seed(protocol, tenant, actor, base_url):
    integration = Integration.objects.filter(tenant=tenant, protocol=protocol.slug,
                                             direction=registry.INBOUND).order_by("id").first()
    if integration is None:
        integration = services.create_integration(tenant, actor, name="Accounts and groups (CSV)",
                                                  protocol=protocol.slug, direction=registry.INBOUND)
    if not Account.objects.filter(tenant=tenant, email=f"maria@{DOMAIN}", username="maria").exists():
        _through_intake(integration, directory_csv(), "demo-accounts.csv")
    activity = Integration.objects.filter(tenant=tenant, protocol="data_integration", direction=registry.INBOUND,
                                          key="activity").first()
    if activity is not None:
        services.set_sandbox(activity, actor, False)  # sandbox values never count in scores
        _scorecard(tenant, activity)
        days = _days_without_values(activity)
        if days:
            _through_intake(activity, activity_csv(days), "demo-activity.csv")
    api = base_url.rstrip("/")
    return {
        "name": integration.name, "protocol": protocol.slug, "direction": registry.INBOUND,
        "accounts_url": api + reverse("api-account-list"), "groups_url": api + reverse("api-group-list"),
        "activity_scores_url": api + reverse("api-activity-score"),
        "objective_scores_url": api + reverse("api-objective-score"),
    }


def _through_intake(integration, data, filename):
    """Send a file to an integration as the upload form does, and process it now (the demo
    should not wait for a worker; the task queued on commit then finds nothing left to do)."""
    upload = receive(integration, io.BytesIO(data), channel=Upload.Channel.WEB, content_type="text/csv",
                     filename=filename, submitted_via="demo")
    process_upload(upload.pk)


def directory_csv():
    lines = ["email,username,manager,groups,manages"]
    for manager, group in MANAGERS.items():
        lines.append(f"{manager}@{DOMAIN},{manager},,,{group}")  # they lead their group, they are not in it
    for name, manager, _ in REPS:
        groups = MANAGERS[manager] + (";Inbound" if name in INBOUND_REPS else "")
        lines.append(f"{name}@{DOMAIN},{name},{manager}@{DOMAIN},{groups},")
    return ("\n".join(lines) + "\n").encode()


def _scorecard(tenant, activity):
    scorecard, _ = Scorecard.objects.get_or_create(tenant=tenant)
    for metric in activity.metrics.filter(name__in=GOALS):
        kind, weight, day, week, month = GOALS[metric.name]
        ScorecardEntry.objects.get_or_create(scorecard=scorecard, metric=metric, kind=kind, defaults={
            "weight": weight, "goal_day": day, "goal_week": week, "goal_month": month})


def _window():
    today = timezone.now().date()
    return [today - datetime.timedelta(days=n) for n in range(DAYS - 1, -1, -1)]


def _days_without_values(activity):
    days = _window()
    emails = [f"{name}@{DOMAIN}" for name, _, _ in REPS]
    done = set(MetricValue.objects.filter(integration=activity, account__email__in=emails,
                                          date__range=(days[0], days[-1])).values_list("date", flat=True))
    return [day for day in days if day not in done and day.weekday() < 5]  # nobody works weekends here


def activity_csv(days):
    """email,date,calls,talk_minutes,deals for each rep and day: the same numbers every run."""
    lines = ["email,date,calls,talk_minutes,deals"]
    for day in days:
        for name, _, pace in REPS:
            rng = random.Random(f"{name}-{day.isoformat()}")
            calls = round(rng.uniform(28, 52) * pace)
            talk = round(rng.uniform(70, 150) * pace)
            deals = int(rng.random() < 0.45 * pace) + int(rng.random() < 0.15 * pace)
            lines.append(f"{name}@{DOMAIN},{day.month}/{day.day}/{day.year},{calls},{talk},{deals}")
    return ("\n".join(lines) + "\n").encode()

