"""Processing inbound uploads into metric values.

One upload is processed in one transaction, holding its integration's row lock (purge takes
the same lock, so the two never interleave). The stored file is parsed again, accounts are
resolved set-based, values are aggregated per (account, date, metric) with pandas and
upserted on their unique key, so that sending the same rows again replaces values instead
of adding to them, and running the task twice writes them once.

Sandbox Mode (seed 000): in Sandbox Mode a failing file just fails. Out of it, an
integration's uploads are processed in arrival order, and one that fails halts the later
ones (status "waiting") until an editor retries or skips it.
"""

import datetime
import logging

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import Integration
from portal.audit import Action, record

from .errors import TRANSFORM_DATA, IntakeError, error
from .models import Account, MetricValue, Upload
from .parsing import parse_upload

log = logging.getLogger(__name__)

Status = Upload.Status
NO_METRICS = "records received, no metrics configured"
BATCH_SIZE = 2000  # upserts are fastest in batches of a few thousand rows (and SQLite caps parameters)
COPY_THRESHOLD = 1000  # on PostgreSQL, more values than this go through COPY (see _upsert_by_copy)


def process_upload(upload_id):
    """Process one upload, once. Safe to call again, from any worker, at any time."""
    # Claim: only a queued upload (or one whose worker died mid-way) is taken.
    claimed = Upload.objects.filter(pk=upload_id, status__in=[Status.QUEUED, Status.PROCESSING]).update(
        status=Status.PROCESSING, started_at=timezone.now(), finished_at=None)
    if not claimed:
        return None
    try:
        with transaction.atomic():
            upload = _write_values(upload_id)
    except IntakeError as exc:
        _fail(upload_id, exc.errors)
    except Exception as exc:  # noqa: BLE001 — the upload must not stay "processing" forever
        log.exception("Processing upload %s failed", upload_id)
        _fail(upload_id, [error("processing_failed", f"Processing failed: {type(exc).__name__}.")])
    else:
        if upload is not None and upload.status == Status.PROCESSED:
            transaction.on_commit(lambda: release_waiting_uploads(upload.integration_id))
        return upload
    return None


def _fail(upload_id, errors):
    Upload.objects.filter(pk=upload_id, status=Status.PROCESSING).update(
        status=Status.FAILED, errors=errors, values_written=0, finished_at=timezone.now(),
        message=f"{len(errors)} error{'s' if len(errors) != 1 else ''}; nothing was written.")


def _write_values(upload_id):
    upload = Upload.objects.select_related("integration").get(pk=upload_id)
    integration = Integration.objects.select_for_update().get(pk=upload.integration_id)
    upload.refresh_from_db()  # a purge that held the lock may have changed it
    if upload.status != Status.PROCESSING:
        return upload
    upload.integration = integration
    if not integration.sandbox and _is_behind_others(upload):
        # Decided under the lock, so that the upload ahead releases this one when it is done.
        upload.status, upload.started_at = Status.WAITING, None
        upload.message = "Waiting for an earlier upload of this integration (retry or skip it if it failed)."
        upload.save(update_fields=["status", "started_at", "message"])
        return upload

    try:
        with upload.file.open("rb") as stored:
            data = stored.read()
    except (FileNotFoundError, ValueError, OSError):
        raise IntakeError([error(TRANSFORM_DATA, "The stored file is gone (purged or deleted); nothing to process.")])
    parsed = parse_upload(integration, data, upload.content_type)
    metrics = list(integration.metrics.all())
    written = 0
    if metrics:
        accounts = _account_ids(integration, list(parsed.user_emails))
        values = aggregate(parsed, metrics, accounts)
        written = upsert_values(integration, upload, values)
    upload.status = Status.PROCESSED
    upload.records = parsed.records
    upload.values_written = written
    upload.errors = []
    upload.message = "" if metrics else NO_METRICS
    upload.finished_at = timezone.now()
    upload.save(update_fields=["status", "records", "values_written", "errors", "message", "finished_at"])
    return upload


def _is_behind_others(upload):
    """Out of sandbox: an earlier upload that failed, waits, or is not processed yet holds this one."""
    earlier = Upload.objects.filter(integration_id=upload.integration_id, id__lt=upload.id)
    return (earlier.filter(status=Status.FAILED, sandbox=False).exists()
            or earlier.filter(status__in=[Status.WAITING, Status.QUEUED, Status.PROCESSING]).exists())


def _account_ids(integration, emails):
    """email → account id for the tenant: one query for those that exist, one insert for the rest."""
    tenant_id = integration.tenant_id
    emails = [e for e in emails if e]
    ids = _select_ids(tenant_id, emails)
    missing = [e for e in emails if e not in ids]
    if missing:
        if integration.unknown_user == Integration.UnknownUser.REJECT:
            raise IntakeError([error(TRANSFORM_DATA, f"No such user in this organisation: {email}.",
                                     column=integration.user_key) for email in missing])
        now = timezone.now()
        Account.objects.bulk_create([Account(tenant_id=tenant_id, email=e, created_at=now) for e in missing],
                                    ignore_conflicts=True, batch_size=BATCH_SIZE)
        ids.update(_select_ids(tenant_id, missing))
    return ids


def _select_ids(tenant_id, emails):
    ids = {}
    for start in range(0, len(emails), 2000):
        ids.update(Account.objects.filter(tenant_id=tenant_id, email__in=emails[start:start + 2000])
                   .values_list("email", "id"))
    return ids


def aggregate(parsed, metrics, account_ids):
    """One row per (metric, account, date) with the metric's aggregation over the file's records."""
    frame = parsed.frame
    codes, emails = parsed.user_codes, parsed.user_emails  # "" (no user) is refused, so has no account
    table = pd.DataFrame({"account_id": np.asarray([account_ids.get(e, 0) for e in emails], dtype="int64")[codes],
                          "date": frame[parsed.dates].to_numpy()})
    for metric in metrics:
        source = frame[metric.source_key]
        if metric.aggregation == "count":  # records that have a value
            present = source.notna() & (source.astype(str).str.strip() != "")
            table[f"m{metric.pk}"] = present.to_numpy(dtype="float64")
        else:
            table[f"m{metric.pk}"] = source.to_numpy(dtype="float64")
    groups = table.groupby(["account_id", "date"], sort=False)  # grouped once, for every metric
    parts = []
    for metric in metrics:
        column = groups[f"m{metric.pk}"]
        if metric.aggregation in ("sum", "count"):
            result = column.sum(min_count=1)
            if metric.aggregation == "count":
                result = result[result > 0]
        else:
            result = column.agg(metric.aggregation)  # max, min, last: each skips empty values
        result = result.dropna()
        parts.append(pd.DataFrame({"metric_id": metric.pk, "account_id": result.index.get_level_values(0),
                                   "date": result.index.get_level_values(1), "value": result.to_numpy()}))
    values = pd.concat(parts, ignore_index=True)
    # In the order of the unique index: the upsert then walks it instead of jumping about.
    return values.sort_values(["metric_id", "account_id", "date"], ignore_index=True)


def upsert_values(integration, upload, values):
    """Write (metric, account, date) → value, replacing what an earlier upload wrote there."""
    if values.empty:
        return 0
    now = timezone.now()
    if connection.vendor == "postgresql" and len(values) > COPY_THRESHOLD:
        return _upsert_by_copy(integration, upload, values, now)
    dates = values["date"].dt.date.to_numpy()
    rows = [
        MetricValue(tenant_id=integration.tenant_id, integration_id=integration.pk, metric_id=int(m),
                    account_id=int(a), date=d, value=float(v), upload_id=upload.pk, updated_at=now)
        for m, a, d, v in zip(values["metric_id"].to_numpy(), values["account_id"].to_numpy(), dates,
                              values["value"].to_numpy())
    ]
    MetricValue.objects.bulk_create(
        rows, batch_size=BATCH_SIZE, update_conflicts=True, unique_fields=["metric", "account", "date"],
        update_fields=["value", "upload", "updated_at"],
    )
    return len(rows)


def _upsert_by_copy(integration, upload, values, now):
    """PostgreSQL: COPY the values in; faster than bulk_create by 5 to 10 times for 45,000 values.

    When the integration holds no value yet in the file's date range (a first load, the next
    day's file, a file sent after a purge), nothing can be replaced: the values are copied
    straight into the table. Otherwise they go to a temporary table first, then one
    INSERT … ON CONFLICT DO UPDATE from it, as bulk_create(update_conflicts=True) above does.
    The check and the write are safe together: every value of an integration's metrics carries
    its integration and is written under the integration's row lock, which this transaction
    holds; and were one missed, the unique constraint would fail the upload, not double a value.
    """
    table = MetricValue._meta.db_table
    dates = values["date"].to_numpy(dtype="datetime64[D]")
    overlaps = MetricValue.objects.filter(
        integration_id=integration.pk, date__range=(dates.min().item(), dates.max().item())).exists()
    columns = [("metric_id", BIGINT, values["metric_id"]), ("account_id", BIGINT, values["account_id"]),
               ("date", DATE, (dates - PG_EPOCH_DAY).astype("int32")), ("value", FLOAT8, values["value"])]
    with connection.cursor() as cursor:
        if not overlaps:
            columns += [("tenant_id", BIGINT, integration.tenant_id), ("integration_id", BIGINT, integration.pk),
                        ("upload_id", BIGINT, upload.pk), ("updated_at", TIMESTAMPTZ, _pg_microseconds(now))]
            names = ", ".join(name for name, _, _ in columns)
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT binary)") as copy:
                copy.write(_binary_copy(columns, len(values)))
            return len(values)
        cursor.execute("DROP TABLE IF EXISTS incoming_metric_values")
        cursor.execute("CREATE TEMPORARY TABLE incoming_metric_values "
                       "(metric_id bigint, account_id bigint, date date, value double precision) ON COMMIT DROP")
        with cursor.cursor.copy("COPY incoming_metric_values (metric_id, account_id, date, value) "
                                "FROM STDIN (FORMAT binary)") as copy:
            copy.write(_binary_copy(columns, len(values)))
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, integration_id, metric_id, account_id, date, value, upload_id, updated_at) "
            "SELECT %s, %s, metric_id, account_id, date, value, %s, %s FROM incoming_metric_values "
            "ON CONFLICT (metric_id, account_id, date) DO UPDATE "
            "SET value = EXCLUDED.value, upload_id = EXCLUDED.upload_id, updated_at = EXCLUDED.updated_at",
            [integration.tenant_id, integration.pk, upload.pk, now],
        )
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


def _queue(upload_ids):
    from .tasks import process_upload as task

    for upload_id in upload_ids:
        task.delay(upload_id)


def release_waiting_uploads(integration_id):
    """Queue the uploads that waited, in arrival order, unless a failed one still holds them.

    Called when an upload is processed, retried or skipped, and when the integration leaves
    Sandbox Mode. Returns how many were queued.
    """
    with transaction.atomic():
        integration = Integration.objects.select_for_update().filter(pk=integration_id).first()
        if integration is None:
            return 0
        uploads = Upload.objects.filter(integration=integration)
        if not integration.sandbox and uploads.filter(status=Status.FAILED, sandbox=False).exists():
            return 0
        waiting = list(uploads.filter(status=Status.WAITING).order_by("id").values_list("id", flat=True))
        if not waiting:
            return 0
        Upload.objects.filter(id__in=waiting, status=Status.WAITING).update(
            status=Status.QUEUED, message="", queued_at=timezone.now())
        transaction.on_commit(lambda: _queue(waiting))
    return len(waiting)


def requeue_stalled_uploads():
    """Send the processing task again for uploads whose task was lost; returns their ids.

    Stalled: queued, or processing, for longer than PORTAL_REQUEUE_AFTER_SECONDS. The
    filesystem broker forgets a message once a worker has read it, so a worker that dies
    mid-task loses it; any broker can lose one. Processing is idempotent (see
    process_upload), so a task that was only slow is harmless to send twice. Runs every few
    minutes (settings.CELERY_BEAT_SCHEDULE).
    """
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.PORTAL_REQUEUE_AFTER_SECONDS)
    queued_long_ago = Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True, created_at__lt=cutoff)
    stalled = Upload.objects.filter(Q(status=Status.QUEUED) & queued_long_ago
                                    | Q(status=Status.PROCESSING, started_at__lt=cutoff))
    upload_ids = list(stalled.order_by("id").values_list("id", flat=True))
    if upload_ids:
        Upload.objects.filter(id__in=upload_ids, status=Status.QUEUED).update(queued_at=now)
        log.warning("Processing of %d upload(s) stalled; queued again: %s", len(upload_ids), upload_ids)
        _queue(upload_ids)
    return upload_ids


@transaction.atomic
def retry_upload(upload, actor):
    """An editor asks to process a failed upload again (it re-reads its stored file)."""
    updated = Upload.objects.filter(pk=upload.pk, status=Status.FAILED).update(
        status=Status.QUEUED, errors=[], message="", queued_at=timezone.now(), started_at=None, finished_at=None)
    if updated:
        record(upload.tenant, actor, Action.UPLOAD_RETRIED, f"Upload #{upload.pk}", upload.integration)
        transaction.on_commit(lambda: _queue([upload.pk]))
    return bool(updated)


@transaction.atomic
def skip_upload(upload, actor):
    """An editor gives up on a failed upload, so that the ones behind it are processed."""
    updated = Upload.objects.filter(pk=upload.pk, status=Status.FAILED).update(
        status=Status.SKIPPED, message="Skipped; later uploads were released.")
    if updated:
        record(upload.tenant, actor, Action.UPLOAD_SKIPPED, f"Upload #{upload.pk}", upload.integration)
        transaction.on_commit(lambda: release_waiting_uploads(upload.integration_id))
    return bool(updated)
