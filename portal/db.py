"""Commits that do not wait for the disk, on PostgreSQL, for writes whose loss costs little.

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

from django.db import DatabaseError, connection, transaction

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
