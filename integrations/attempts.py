"""The database side of an outbound attempt, in as few round trips as the database allows.

Every dispatch pays these on top of its HTTP exchange (bench/bench_dispatch.py measures
it), and compiling querysets cost more than the round trips themselves, so this module
writes its few statements as SQL built from the models' own fields:

- claim(): one UPDATE that takes attempt n and a SELECT of the dispatch with its upload and
  integration: on PostgreSQL as one statement (the SELECT reads the UPDATE's RETURNING);
- write_outcome(): the attempt's call-log rows, the dispatch's state and the upload's
  state, together: on PostgreSQL as one statement (data-modifying WITH clauses), elsewhere
  in one transaction.

Values go in through each field's get_db_prep_save() and come back through the field's
converters, as the ORM does it, so JSON, dates and times are stored and read the same way
as everywhere else.
"""

import functools
import weakref
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from uploads.models import Upload

from .models import CallLog, Dispatch, Integration


def claim(dispatch_id, attempt, now, lease_seconds):
    """Take attempt `attempt` of a dispatch: the dispatch, with .upload and .upload.integration
    loaded, or None when the attempt is not this task's to make.

    Only one task may make attempt n, and only once attempt n-1 is over, so a duplicated
    task finds it taken. It may also take over attempt n from a worker that died making
    it: one whose claim is older than a lease. The UPDATE is atomic on its own.
    (A row deleted meanwhile, by a purge or with its tenant, is not claimed either.)
    """
    connection = connections[DEFAULT_DB_ALIAS]  # looked up once: each lookup goes through a thread-local
    claim_sql, claim_params = _update(
        connection, Dispatch,
        {"status": Dispatch.Status.SENDING, "attempts": attempt, "next_attempt_at": None, "claimed_at": now},
        "id = %s AND (status = %s AND attempts = %s OR status = %s AND attempts = %s AND claimed_at < %s)",
        [dispatch_id, Dispatch.Status.WAITING, attempt - 1, Dispatch.Status.SENDING, attempt,
         connection.ops.adapt_datetimefield_value(now - timedelta(seconds=lease_seconds))],
    )
    with _cursor(connection) as cursor:
        if connection.vendor == "postgresql":  # one round trip: the SELECT reads what the UPDATE returns
            cursor.execute(f"WITH claimed AS ({claim_sql} RETURNING *) {_load_sql(connection.vendor, 'claimed')}",
                           claim_params)
        else:
            cursor.execute(claim_sql, claim_params)
            if cursor.rowcount != 1:
                return None
            cursor.execute(f"{_load_sql(connection.vendor, Dispatch._meta.db_table)} WHERE d.id = %s", [dispatch_id])
        row = cursor.fetchone()
    if row is None:
        return None
    dispatch, rest = _instance(connection, Dispatch, row)
    upload, rest = _instance(connection, Upload, rest)
    integration, _ = _instance(connection, Integration, rest)
    upload.integration = integration
    dispatch.upload = upload
    return dispatch


def write_outcome(dispatch, calls, dispatch_changes, upload_changes):
    """Store an attempt's call-log rows and its outcome at once: the changes to the dispatch,
    and those to its upload unless the upload stopped sending meanwhile (it was purged)."""
    connection = connections[DEFAULT_DB_ALIAS]
    statements = [
        *([_insert(connection, CallLog, calls)] if calls else []),
        _update(connection, Dispatch, dispatch_changes, "id = %s", [dispatch.pk]),
        _update(connection, Upload, upload_changes, "id = %s AND status = %s",
                [dispatch.upload_id, Upload.Status.SENDING]),
    ]
    if connection.vendor == "postgresql":
        *first, (last_sql, _) = statements
        sql = "WITH " + ", ".join(f"step{n} AS ({step_sql})" for n, (step_sql, _) in enumerate(first))
        with _cursor(connection) as cursor:
            cursor.execute(f"{sql} {last_sql}", [param for _, params in statements for param in params])
        return
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


# --- SQL from the models' fields ------------------------------------------------------------


def _cursor(connection):
    """A cursor for the attempt's statements. On PostgreSQL it binds parameters on the server, so
    that psycopg prepares each statement once per connection (settings: prepare_threshold)
    instead of PostgreSQL planning it for every attempt: planning the claim took longer than
    running it. Django's own cursors bind on the client and never prepare."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    cursor = ServerBindingCursor(connection.connection)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


@functools.cache
def _load_sql(vendor, dispatches):
    """The SELECT of a dispatch (from the table or query named `dispatches`) with its upload and
    integration."""
    qn = connections[DEFAULT_DB_ALIAS].ops.quote_name

    def columns(model, alias):
        return ", ".join(f"{alias}.{qn(field.column)}" for field in model._meta.concrete_fields)

    return (
        f"SELECT {columns(Dispatch, 'd')}, {columns(Upload, 'u')}, {columns(Integration, 'i')} "
        f"FROM {qn(dispatches)} d JOIN {qn(Upload._meta.db_table)} u ON u.id = d.upload_id "
        f"JOIN {qn(Integration._meta.db_table)} i ON i.id = u.integration_id"
    )


def _instance(connection, model, row):
    """A model instance from the first values of a row, converted as the ORM converts them; and
    the rest of the row."""
    fields = model._meta.concrete_fields
    values = list(row[:len(fields)])
    for index, column, converters in _converters(connection, model):
        for convert in converters:
            values[index] = convert(values[index], column, connection)
    instance = model.from_db(connection.alias, [field.attname for field in fields], values)
    return instance, row[len(fields):]


_converters_of = weakref.WeakKeyDictionary()  # connection → model → its fields' converters


def _converters(connection, model):
    """The model's fields that the ORM passes through converters when it reads them (JSON, and
    dates on SQLite), each with its converters; worked out once per connection."""
    by_model = _converters_of.setdefault(connection, {})
    if model not in by_model:
        found = []
        for index, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(model._meta.db_table)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if converters:
                found.append((index, column, converters))
        by_model[model] = found
    return by_model[model]


def _update(connection, model, changes, where, where_params):
    qn = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in changes]
    assignments = ", ".join(f"{qn(field.column)} = %s" for field in fields)
    params = [field.get_db_prep_save(changes[field.name], connection) for field in fields]
    return f"UPDATE {qn(model._meta.db_table)} SET {assignments} WHERE {where}", params + list(where_params)


def _insert(connection, model, instances):
    qn = connection.ops.quote_name
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection)
              for instance in instances for field in fields]
    columns = ", ".join(qn(field.column) for field in fields)
    return f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES {', '.join([row] * len(instances))}", params
