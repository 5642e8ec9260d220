"""Processing a seed-000 upload into metric values: (account, date, metric) → value.

Runs inside the processing transaction (uploads.processing), holding the integration's row
lock (purge takes the same lock, so the two never interleave). Accounts are resolved
set-based, values are aggregated per (account, date, metric) with pandas and upserted on
their unique key, so that sending the same rows again replaces values instead of adding to
them, and running the task twice writes them once.
"""

import datetime
import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection
from django.utils import timezone

from uploads.errors import TRANSFORM_DATA, IntakeError, error
from uploads.models import Account, MetricValue

BATCH_SIZE = 2000  # upserts are fastest in batches of a few thousand rows (and SQLite caps parameters)
COPY_THRESHOLD = 1000  # on PostgreSQL, more values than this go through COPY (see _upsert_by_copy)


def write_values(fmt, upload, summary):
    """Write a file's summarized values for their accounts; returns how many were written."""
    if not fmt.metrics:
        return 0
    accounts = _account_ids(fmt, list(summary.emails))
    return upsert_values(fmt, upload, with_accounts(summary, accounts))


def _account_ids(fmt, emails):
    """email → account id for the tenant: one query for those that exist, one insert for the rest."""
    tenant_id = fmt.tenant_id
    emails = [e for e in emails if e]
    ids = _select_ids(tenant_id, emails)
    missing = [e for e in emails if e not in ids]
    if missing:
        if fmt.unknown_user == "reject":
            raise IntakeError([error(TRANSFORM_DATA, f"No such user in this organisation: {email}.",
                                     column=fmt.user_key) for email in missing])
        Account.create_missing(tenant_id, missing)
        ids.update(_select_ids(tenant_id, missing))
    return ids


def _select_ids(tenant_id, emails):
    ids = {}
    for start in range(0, len(emails), 2000):
        ids.update(Account.objects.filter(tenant_id=tenant_id, email__in=emails[start:start + 2000])
                   .values_list("email", "id"))
    return ids


@dataclass
class Summary:
    """A file's values before their accounts are known: one row per (metric, user, date), the
    user a code into `emails`. A large file's check works it out already (the request has parsed
    the file), and processing reads it back instead of parsing the file again (dump, load)."""

    values: pd.DataFrame  # metric_id, user, date, value
    emails: np.ndarray  # distinct users, cleaned, as ParsedUpload.user_emails

    COLUMNS = ("metric_id", "user", "date", "value")

    def dump(self, fingerprint):
        """NumPy's .npz: arrays only, so that loading it runs no code (allow_pickle=False). The
        emails travel as one JSON string: a NumPy string array would drop a trailing NUL."""
        buffer = io.BytesIO()
        np.savez(buffer, fingerprint=np.array(fingerprint), emails=np.array(json.dumps(list(self.emails))),
                 **{name: self.values[name].to_numpy() for name in self.COLUMNS})
        return buffer.getvalue()

    @classmethod
    def load(cls, file, fingerprint):
        """The summary dump() wrote for this fingerprint (of the Data Format); None if it was made
        under another one (the Data Format changed since) or cannot be read."""
        try:
            with np.load(file, allow_pickle=False) as arrays:
                if str(arrays["fingerprint"]) != fingerprint:
                    return None
                values = pd.DataFrame({name: arrays[name] for name in cls.COLUMNS})
                emails = np.array(json.loads(str(arrays["emails"])), dtype=object)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
        return cls(values, emails)


def summarize(parsed, metrics):
    """One row per (metric, user, date) with the metric's aggregation over the file's records."""
    frame = parsed.frame
    day_codes, days = pd.factorize(frame[parsed.dates].to_numpy())
    # (user, day) as one integer: the records are grouped once, for every metric, by a single key
    # (a quarter faster than by the account and date columns, and without copying the metric columns).
    key = parsed.user_codes.astype("int64") * len(days) + day_codes
    groups = frame.groupby(key, sort=False)
    parts = []
    for metric in metrics:
        if metric.aggregation == "count":  # records that have a value
            source = frame[metric.source_key]
            present = source.notna() & (source.astype(str).str.strip() != "")
            result = present.astype("float64").groupby(key, sort=False).sum()
            result = result[result > 0]
        elif metric.aggregation == "sum":
            result = groups[metric.source_key].sum(min_count=1)
        else:
            result = groups[metric.source_key].agg(metric.aggregation)  # max, min, last: each skips empty values
        result = result.dropna()
        users, day = np.divmod(result.index.to_numpy(), len(days))
        parts.append(pd.DataFrame({"metric_id": np.full(len(result), metric.pk, dtype="int64"), "user": users,
                                   "date": days[day], "value": result.to_numpy(dtype="float64")}))
    values = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({name: [] for name in Summary.COLUMNS})
    return Summary(values, parsed.user_emails)


def with_accounts(summary, account_ids):
    """The summary's values per (metric, account, date), in the order of that unique index (the
    upsert then walks it instead of jumping about)."""
    # "" (no user) is refused, so has no account; each other user has an account of its own.
    accounts = np.asarray([account_ids.get(e, 0) for e in summary.emails], dtype="int64")
    values = summary.values
    values = pd.DataFrame({"metric_id": values["metric_id"].to_numpy(),
                           "account_id": accounts[values["user"].to_numpy(dtype="int64")],
                           "date": values["date"], "value": values["value"]})
    return values.sort_values(["metric_id", "account_id", "date"], ignore_index=True)


# --- Small plain uploads, without pandas ------------------------------------------------------------
# A plain JSON body (protocol.plain_json_records) holds a few dozen records at most; summarizing
# them with pandas (frames, a groupby, a sort) took about a third of processing's time for a
# 1 KB upload. Here they are summarized in Python, with the same results to the last bit
# (tests/test_performance_paths.py holds the two side by side).


def write_plain_values(fmt, upload, plain):
    """Write the values of plain records [(user, date, {source key: value})]; returns how many."""
    if not fmt.metrics:
        return 0
    accounts = _account_ids(fmt, sorted({user for user, _, _ in plain}))
    return upsert_rows(fmt, upload, plain_values(fmt.metrics, plain, accounts))


def plain_values(metrics, plain, account_ids):
    """(metric id, account id, date, value) rows of plain records, each metric aggregated as
    summarize() does it, in the order of the unique index."""
    rows = []
    for metric in metrics:
        groups = {}
        for user, day, fields in plain:
            groups.setdefault((account_ids[user], day), []).append(fields[metric.source_key])
        for (account, day), found in groups.items():
            value = _plain_aggregate(metric.aggregation, found)
            if value is not None:
                rows.append((metric.pk, account, day, value))
    rows.sort(key=lambda row: row[:3])
    return rows


def _plain_aggregate(aggregation, found):
    if aggregation == "count":  # values that are not blank; plain records hold no missing ones
        present = sum(1 for value in found if str(value).strip() != "")
        return float(present) if present else None
    if aggregation == "sum":
        return _compensated_sum(found)
    if aggregation == "max":
        return max(found)
    if aggregation == "min":
        return min(found)
    return found[-1]  # last


def _compensated_sum(values):
    """Kahan's compensated sum, as pandas' groupby sums floats: the same total, bit for bit."""
    total = compensation = 0.0
    for value in values:
        y = value - compensation
        t = total + y
        compensation = t - total - y
        total = t
    return total


def aggregate(parsed, metrics, account_ids):
    """One row per (metric, account, date) with the metric's aggregation over the file's records."""
    return with_accounts(summarize(parsed, metrics), account_ids)


def upsert_values(fmt, upload, values):
    """Write (metric, account, date) → value, replacing what an earlier upload wrote there."""
    if values.empty:
        return 0
    if connection.vendor == "postgresql" and len(values) > COPY_THRESHOLD:
        return _upsert_by_copy(fmt, upload, values, timezone.now())
    # Dates as ISO text, made in one vectorised step (45,000 date objects took 40 ms more).
    return upsert_rows(fmt, upload, list(zip(
        values["metric_id"].to_numpy(dtype=object), values["account_id"].to_numpy(dtype=object),
        values["date"].dt.strftime("%Y-%m-%d").to_numpy(dtype=object), values["value"].to_numpy(dtype=object))))


def upsert_rows(fmt, upload, rows):
    """Write (metric id, account id, date, value) rows as upsert_values does, without COPY; the
    date a datetime.date or its ISO text."""
    now = timezone.now()
    if connection.vendor == "sqlite":
        return _upsert_by_executemany(fmt, upload, rows, now)
    if connection.vendor == "postgresql":
        return _upsert_by_arrays(fmt, upload, rows, now)
    MetricValue.objects.bulk_create(
        [MetricValue(tenant_id=fmt.tenant_id, integration_id=fmt.integration_id, metric_id=int(m),
                     account_id=int(a), date=d, value=float(v), upload_id=upload.pk, updated_at=now)
         for m, a, d, v in rows],
        batch_size=BATCH_SIZE, update_conflicts=True, unique_fields=["metric", "account", "date"],
        update_fields=["value", "upload", "updated_at"],
    )
    return len(rows)


_UPSERT = (f"INSERT INTO {MetricValue._meta.db_table} "
           "(tenant_id, integration_id, metric_id, account_id, date, value, upload_id, updated_at) ")
_ON_CONFLICT_REPLACE = ("ON CONFLICT (metric_id, account_id, date) DO UPDATE "
                        "SET value = EXCLUDED.value, upload_id = EXCLUDED.upload_id, updated_at = EXCLUDED.updated_at")


def _upsert_by_arrays(fmt, upload, rows, now):
    """PostgreSQL, up to COPY_THRESHOLD values: the rows as four arrays, which the server unnests
    into one INSERT … ON CONFLICT DO UPDATE. bulk_create built and bound eight parameters per row:
    for a 1 KB upload's 14 values that was 1.9 ms of a worker's 2.2 ms per upload under cProfile
    (bench/profile_small_intake.py's body, a batch of 200), the most of any part of processing."""
    metric_ids, account_ids, dates, values = zip(*rows)
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT + "SELECT %s, %s, m, a, d, v, %s, %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::date[], %s::float8[]) AS incoming (m, a, d, v) "
            + _ON_CONFLICT_REPLACE,
            [fmt.tenant_id, fmt.integration_id, upload.pk, now, [int(m) for m in metric_ids],
             [int(a) for a in account_ids], list(dates), [float(v) for v in values]])
    return len(rows)


def _upsert_by_executemany(fmt, upload, rows, now):
    """SQLite: one prepared INSERT … ON CONFLICT DO UPDATE run over every row by the driver; 20 to
    40 times faster than bulk_create for 45,000 values, so that processing holds SQLite's one
    write lock for a fraction of a second instead of seconds."""
    updated_at = connection.ops.adapt_datetimefield_value(now)
    # str(): a date's ISO text, which is how Django stores a DateField in SQLite.
    params = [(fmt.tenant_id, fmt.integration_id, m, a, str(d), v, upload.pk, updated_at) for m, a, d, v in rows]
    with connection.cursor() as cursor:
        cursor.executemany(_UPSERT + "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) " + _ON_CONFLICT_REPLACE, params)
    return len(rows)


def _upsert_by_copy(fmt, upload, values, now):
    """PostgreSQL: COPY the values in; faster than bulk_create by 5 to 10 times for 45,000 values.

    Values that are new are copied straight into the table: all of them in a first load, the
    next day's file or a file sent after a purge, and most of them in a file that overlaps a few
    earlier values. The ones that replace a value go through a temporary table and one
    INSERT … ON CONFLICT DO UPDATE, which costs nearly twice as much per value (the 15 MB
    benchmark file's 45,000 values, 591 of them held already, load 1: 0.20 s all through the
    temporary table, 0.14 s split, 0.12 s if none had been held). When more than half of them
    replace values (a file sent again), they all go that way: telling them apart would cost more
    than it saves.
    Telling them apart and writing are safe together: every value of an integration's metrics
    carries its integration and is written under the integration's row lock, which this
    transaction holds; and were one missed, the unique constraint would fail the upload, not
    double a value.
    """
    existing = _existing(fmt, values, most=len(values) // 2)
    if existing is None:
        return _replace_by_copy(fmt, upload, values, now)
    written = 0
    if not existing.all():
        written += _insert_by_copy(fmt, upload, values[~existing], now)
    if existing.any():
        written += _replace_by_copy(fmt, upload, values[existing], now)
    return written


def _existing(fmt, values, most):
    """Which of the values the table holds already (a boolean array), or None when the integration
    holds more than `most` values in their date range."""
    days = values["date"].to_numpy(dtype="datetime64[D]")
    in_range = MetricValue.objects.filter(integration_id=fmt.integration_id,
                                          date__range=(days.min().item(), days.max().item())).order_by()
    found = in_range[:most + 1].count()
    if found == 0:
        return np.zeros(len(values), dtype=bool)
    if found > most:
        return None
    metric_ids, account_ids, dates = zip(*in_range.values_list("metric_id", "account_id", "date"))
    held = pd.MultiIndex.from_arrays([np.array(metric_ids, dtype="int64"), np.array(account_ids, dtype="int64"),
                                      np.array(dates, dtype="datetime64[D]")])
    incoming = pd.MultiIndex.from_arrays([values["metric_id"].to_numpy(dtype="int64"),
                                          values["account_id"].to_numpy(dtype="int64"), days])
    return incoming.isin(held)


def _binary_columns(values):
    dates = values["date"].to_numpy(dtype="datetime64[D]")
    return [("metric_id", BIGINT, values["metric_id"]), ("account_id", BIGINT, values["account_id"]),
            ("date", DATE, (dates - PG_EPOCH_DAY).astype("int32")), ("value", FLOAT8, values["value"])]


def _insert_by_copy(fmt, upload, values, now):
    """Values the table does not hold: copied straight into it."""
    columns = _binary_columns(values) + [
        ("tenant_id", BIGINT, fmt.tenant_id), ("integration_id", BIGINT, fmt.integration_id),
        ("upload_id", BIGINT, upload.pk), ("updated_at", TIMESTAMPTZ, _pg_microseconds(now))]
    names = ", ".join(name for name, _, _ in columns)
    table = MetricValue._meta.db_table
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT binary)") as copy:
        copy.write(_binary_copy(columns, len(values)))
    return len(values)


def _replace_by_copy(fmt, upload, values, now):
    """Values that may replace others: copied into a temporary table, then upserted from it."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS incoming_metric_values")
        cursor.execute("CREATE TEMPORARY TABLE incoming_metric_values "
                       "(metric_id bigint, account_id bigint, date date, value double precision) ON COMMIT DROP")
        with cursor.cursor.copy("COPY incoming_metric_values (metric_id, account_id, date, value) "
                                "FROM STDIN (FORMAT binary)") as copy:
            copy.write(_binary_copy(_binary_columns(values), len(values)))
        cursor.execute(
            _UPSERT + "SELECT %s, %s, metric_id, account_id, date, value, %s, %s FROM incoming_metric_values "
            + _ON_CONFLICT_REPLACE, [fmt.tenant_id, fmt.integration_id, upload.pk, now])
        written = cursor.rowcount
        cursor.execute("DROP TABLE incoming_metric_values")
    return written


# PostgreSQL's binary COPY format (documented with the COPY command): big-endian values, dates
# as days and timestamps as microseconds since 2000-01-01. numpy lays out all the rows at once,
# where text would need formatting by Python and parsing by the server, row by row.
BIGINT, DATE, FLOAT8, TIMESTAMPTZ = ">i8", ">i4", ">f8", ">i8"
PG_EPOCH_DAY = np.datetime64("2000-01-01", "D")
PG_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


def _pg_microseconds(moment):
    return (moment - PG_EPOCH) // datetime.timedelta(microseconds=1)


def _binary_copy(columns, count):
    """COPY … (FORMAT binary) data for `count` rows of (name, type, values or one value) columns."""
    layout = [("fields", ">i2")]
    for i, (_, kind, _) in enumerate(columns):
        layout += [(f"size{i}", ">i4"), (f"value{i}", kind)]
    rows = np.empty(count, dtype=np.dtype(layout))  # packed: no padding between fields
    rows["fields"] = len(columns)
    for i, (_, kind, values) in enumerate(columns):
        rows[f"size{i}"] = np.dtype(kind).itemsize
        rows[f"value{i}"] = np.asarray(values)
    return b"PGCOPY\n\xff\r\n\x00" + bytes(8) + rows.tobytes() + b"\xff\xff"  # signature, flags, rows, end
