"""Activity and objective scores, computed from stored metric values on request (docs/scores.md).

For one kind of score (activity or objective) the tenant's scorecard names the metrics that
count, each with a weight and a goal per period. For an account and a period:

    value(metric)      = the metric's values over the period's days, with the metric's own
                         aggregation (sum and count: summed; max, min; last: the latest day's)
    attainment(metric) = value / goal, between 0 and the scorecard's cap (150 % by default)
    score              = 100 × Σ weight × attainment / Σ weight

A manager's score is the mean of their direct reports' scores, a group's the mean of its
members' (an account without values counts, with 0). Values of integrations in Sandbox Mode
never count. Everything is computed at once, with numpy, for every account of the tenant and
every period asked: a month of 500 accounts is one query of about 45,000 values and a few
array operations (bench/bench_scores.py measures it).
"""

import datetime
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import CharField
from django.db.models.functions import Cast

from integrations.models import Direction
from uploads.models import Account, Group, MetricValue

from .models import Period, Scorecard, ScorecardEntry

INDIVIDUAL, MANAGER, GROUP = "individual", "manager", "group"
ENTITY_TYPES = (INDIVIDUAL, MANAGER, GROUP)
MAX_PERIODS = 400  # a year and more of days in one request; wider ranges are refused


def period_start(day, period):
    if period == Period.WEEK:
        return day - datetime.timedelta(days=day.weekday())
    if period == Period.MONTH:
        return day.replace(day=1)
    return day


def period_end(start, period):
    if period == Period.WEEK:
        return start + datetime.timedelta(days=6)
    if period == Period.MONTH:
        following = (start.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        return following - datetime.timedelta(days=1)
    return start


def period_starts(period, first, last):
    """The starts of the periods that hold any day from first to last, in order."""
    starts, start = [], period_start(first, period)
    while start <= last:
        starts.append(start)
        start = period_end(start, period) + datetime.timedelta(days=1)
    return starts


def _starts_of(dates, period):
    """Vectorised period_start for a datetime64 array (of any unit), as datetime64[D]."""
    dates = dates.astype("datetime64[D]")
    if period == Period.MONTH:
        return dates.astype("datetime64[M]").astype("datetime64[D]")
    if period == Period.WEEK:
        days = dates.astype("int64")
        return (days - (days + 3) % 7).astype("datetime64[D]")  # 1970-01-01 was a Thursday
    return dates


@dataclass
class Entry:
    metric_id: int
    integration_id: int
    metric: str
    data_type: str
    weight: float
    goal: float
    aggregation: str
    counts: bool  # its integration is inbound and out of Sandbox Mode


def scorecard_entries(tenant_id, kind, period):
    """(entries of this kind, attainment cap as a fraction)."""
    scorecard = Scorecard.objects.filter(tenant_id=tenant_id).first()
    if scorecard is None:
        return [], 1.5
    rows = (ScorecardEntry.objects.filter(scorecard=scorecard, kind=kind).select_related("metric__integration")
            .order_by("metric__name", "id"))
    entries = [Entry(metric_id=row.metric_id, integration_id=row.metric.integration_id, metric=row.metric.name, data_type=row.metric.integration.key,
                     weight=row.weight, goal=row.goal(period), aggregation=row.metric.aggregation,
                     counts=row.metric.integration.direction == Direction.INBOUND
                     and not row.metric.integration.sandbox)
               for row in rows]
    return entries, scorecard.attainment_cap / 100


def _values(tenant_id, entries, first_day, last_day):
    """The counted values of the entries' metrics from first_day to last_day: a DataFrame of
    account_id, metric_id, date (datetime64[D]), value."""
    counted = [e for e in entries if e.counts]
    if not counted:
        return pd.DataFrame({"account_id": [], "metric_id": [], "date": np.array([], "datetime64[D]"), "value": []})
    metric_ids = [e.metric_id for e in counted]
    integration_ids = sorted({e.integration_id for e in counted})
    # integration_id leads the (integration, date) index, so the date range is read from it.
    query = MetricValue.objects.filter(
        tenant_id=tenant_id, integration_id__in=integration_ids, metric_id__in=metric_ids,
        date__gte=first_day, date__lte=last_day,
    ).order_by().annotate(day=Cast("date", CharField())).values_list("account_id", "metric_id", "day", "value")
    # Rows straight from the cursor, dates as text: converting them row by row (Django, or
    # sqlite3's own converters) costs more than the query itself; pandas reads them at once.
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    frame = pd.DataFrame(rows, columns=["account_id", "metric_id", "date", "value"])
    frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d") if rows else np.array([], "datetime64[D]")
    return frame


class ScoreTable:
    """Scores of every entity for every period asked, as arrays; rows are built only for the
    slice that is read (the API pages through it, a page builds a page's rows)."""

    def __init__(self, kind, period, starts, entries, cap, accounts, managers, groups, values):
        self.kind, self.period, self.starts, self.entries, self.cap = kind, period, starts, entries, cap
        account_ids = [a["id"] for a in accounts]
        metric_index = {e.metric_id: i for i, e in enumerate(entries)}
        periods, people, metrics = len(starts), len(accounts), len(entries)

        # value[p, a, m]: the metric's value for the account over the period (0 when none).
        value = np.zeros((periods, people, metrics))
        if len(values) and metrics:
            start_days = np.array(starts, dtype="datetime64[D]")
            values = values.assign(start=_starts_of(values["date"].to_numpy(), period))
            values = values.sort_values("date", kind="stable")
            grouped = values.groupby(["metric_id", "account_id", "start"], sort=False)["value"]
            combined = grouped.agg(["sum", "max", "min", "last"])
            pick = {"sum": "sum", "count": "sum", "max": "max", "min": "min", "last": "last"}
            keys = combined.index.to_frame(index=False)
            aggregation = {e.metric_id: pick.get(e.aggregation, "sum") for e in entries}
            chosen = np.select([keys["metric_id"].map(aggregation).to_numpy() == name for name in combined.columns],
                               [combined[name].to_numpy() for name in combined.columns])
            p = np.searchsorted(start_days, keys["start"].to_numpy())
            a = pd.Index(account_ids).get_indexer(keys["account_id"].to_numpy())
            m = keys["metric_id"].map(metric_index).to_numpy()
            known = a >= 0  # values of accounts deleted meanwhile have no row here
            value[p[known], a[known], m[known]] = chosen[known]

        goals = np.array([e.goal for e in entries], dtype=float) if metrics else np.zeros(0)
        weights = np.array([e.weight for e in entries], dtype=float) if metrics else np.zeros(0)
        attainment = np.clip(value / np.where(goals > 0, goals, np.inf), 0, cap) if metrics else value
        total_weight = weights.sum()

        # Teams: managers over their direct reports, groups over their members. share[t, a] is
        # 1/members when a is a member of t, so share @ x is the members' mean of x.
        index_of = {account_id: i for i, account_id in enumerate(account_ids)}
        teams = [(MANAGER, m["username"], m["email"], m["members"]) for m in managers] + \
                [(GROUP, str(g["id"]), g["name"], g["members"]) for g in groups]
        share = np.zeros((len(teams), people))
        for t, (_, _, _, members) in enumerate(teams):
            columns = [index_of[member] for member in members if member in index_of]
            if columns:
                share[t, columns] = 1 / len(columns)
        team_value = np.einsum("ta,pam->ptm", share, value)
        team_attainment = np.einsum("ta,pam->ptm", share, attainment)

        self.entities = [(INDIVIDUAL, a["username"], a["email"], 1) for a in accounts] + \
                        [(kind_, entity_id, name, len(members)) for kind_, entity_id, name, members in teams]
        self.value = np.concatenate([value, team_value], axis=1)
        self.attainment = np.concatenate([attainment, team_attainment], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.score = 100 * (self.attainment * weights).sum(axis=2) / total_weight if total_weight else \
                np.full(self.value.shape[:2], np.nan)
        self.rows = [(p, e) for p in range(periods) for e in range(len(self.entities))]

    def only(self, entity_type=None, entity_id=None):
        """Keep the rows of one entity type and/or one EntityID."""
        self.rows = [(p, e) for p, e in self.rows
                     if (entity_type is None or self.entities[e][0] == entity_type)
                     and (entity_id is None or self.entities[e][1] == entity_id)]
        return self

    def means(self, entity_type):
        """Per period, the mean score of the entities of one type (None where there are none)."""
        columns = [e for e, entity in enumerate(self.entities) if entity[0] == entity_type]
        if not columns or np.isnan(self.score).all():  # nobody, or no metric on the scorecard
            return [None] * len(self.starts)
        return [round(float(m), 2) for m in self.score[:, columns].mean(axis=1)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.row(p, e) for p, e in self.rows[index]]
        return self.row(*self.rows[index])

    def __iter__(self):
        return (self.row(p, e) for p, e in self.rows)

    def count(self):
        return len(self.rows)

    def row(self, p, e):
        entity_type, entity_id, name, members = self.entities[e]
        start = self.starts[p]
        score = self.score[p, e]
        return {
            "entity_id": entity_id, "entity_type": entity_type, "name": name, "members": members,
            "period": self.period, "period_start": start, "period_end": period_end(start, self.period),
            "score": None if np.isnan(score) else round(float(score), 2),
            "metrics": [{"metric": entry.metric, "data_type": entry.data_type, "weight": entry.weight,
                         "goal": entry.goal, "value": round(float(self.value[p, e, m]), 4),
                         "attainment": round(100 * float(self.attainment[p, e, m]), 2)}
                        for m, entry in enumerate(self.entries)],
        }


def directory(tenant_id):
    """(accounts, managers with their direct reports, groups with their members), in EntityID order."""
    Account.fill_usernames(tenant_id)  # accounts created in bulk by processing since the last look
    accounts = list(Account.objects.filter(tenant_id=tenant_id).order_by("username")
                    .values("id", "username", "email", "manager_id"))
    by_id = {a["id"]: a for a in accounts}
    reports = {}
    for account in accounts:
        if account["manager_id"] in by_id:
            reports.setdefault(account["manager_id"], []).append(account["id"])
    managers = [{**by_id[m], "members": members} for m, members in reports.items()]
    managers.sort(key=lambda m: m["username"])
    members = {}
    for group_id, account_id in Account.groups.through.objects.filter(
            group__tenant_id=tenant_id).values_list("group_id", "account_id"):
        members.setdefault(group_id, []).append(account_id)
    groups = [{"id": g["id"], "name": g["name"], "members": members[g["id"]]}
              for g in Group.objects.filter(tenant_id=tenant_id).order_by("id").values("id", "name")
              if g["id"] in members]
    return accounts, managers, groups


def compute_scores(tenant_id, kind, period, first, last=None):
    """Scores of every account, manager and group of the tenant for each period that holds a
    day from first to last (last defaults to first): a ScoreTable."""
    last = last or first
    starts = period_starts(period, first, last)
    if len(starts) > MAX_PERIODS:
        raise ValueError(f"At most {MAX_PERIODS} periods at a time; ask for a shorter range.")
    entries, cap = scorecard_entries(tenant_id, kind, period)
    accounts, managers, groups = directory(tenant_id)
    values = _values(tenant_id, entries, starts[0], period_end(starts[-1], period))
    return ScoreTable(kind, period, starts, entries, cap, accounts, managers, groups, values)
