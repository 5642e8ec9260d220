"""Database helpers: commits that do not wait for the disk, updates written together, and the
errors that say the database could not do it now.

Commits that do not wait for the disk, on PostgreSQL, for writes whose loss costs little.

With `synchronous_commit` off, a commit is visible to every other connection at once, as
always, and reaches the disk a fraction of a second later: only a crash of the database's
machine within that fraction could lose it. The portal uses it where that loss is harmless:
a line of the call log, and an outbound attempt's bookkeeping (the
attempt is then made again; at least once is what sending over a network promises anyway).
An upload's own commit, and processing's, always wait for the disk. Elsewhere than on
PostgreSQL, or inside a caller's transaction, these change nothing.
"""

import contextlib
import contextvars

from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections, transaction
from django.db.models.sql import UpdateQuery

# The database could not do it now, which says nothing of the work: a deadlock, a lock or
# statement timeout, a lost connection or a restarting server (OperationalError), a connection
# already closed (InterfaceError), SQLite's "database is locked". Work that meets one is tried
# again later (uploads/tasks.py); portal/celery.py closes the connection it may have broken.
DATABASE_BUSY = (OperationalError, InterfaceError)

_session_off = contextvars.ContextVar("synchronous_commit_off", default=False)


def _applies():
    return connection.vendor == "postgresql" and not connection.in_atomic_block and not _session_off.get()


@contextlib.contextmanager
def unflushed():
    """One write (or a few) in a transaction of its own whose commit does not wait for the disk."""
    if not _applies():
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


@contextlib.contextmanager
def unflushed_session():
    """Every commit of this connection within the block does not wait for the disk (one SET
    and one RESET, rather than a transaction for each write)."""
    if not _applies():
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    marker = _session_off.set(True)
    try:
        yield
    finally:
        _session_off.reset(marker)
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except DatabaseError:  # a broken connection is replaced, with the server's default
            connection.close()


def update_together(*updates):
    """UPDATEs of different rows, each a (queryset, changes) pair, made all or none.

    On PostgreSQL they go as one statement (data-modifying WITH), whose SQL Django's own
    compiler writes: one round trip instead of a transaction's BEGIN, an UPDATE each and
    COMMIT, about 0.4 ms each, several times per outbound file. Elsewhere, one transaction.
    """
    updates = [update for update in updates if update and update[1]]  # None, or nothing to change
    if not updates:
        return
    alias = updates[0][0].db
    if connections[alias].vendor != "postgresql" or len(updates) == 1:
        with transaction.atomic(using=alias):
            for queryset, changes in updates:
                queryset.update(**changes)
        return
    statements, params = [], []
    for queryset, changes in updates:
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(changes)
        sql, sql_params = query.get_compiler(alias).as_sql()
        statements.append(sql)
        params.extend(sql_params)
    *first, last = statements
    sql = "WITH " + ", ".join(f"update_{n} AS ({statement})" for n, statement in enumerate(first)) + " " + last
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
