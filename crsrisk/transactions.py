"""A transaction that holds no write lock on SQLite, for work that writes only temporary tables.

SQLite has one writer at a time, and the project begins every transaction ``IMMEDIATE``
(``crsrisk/settings.py``) so that a write never fails half-way for want of the lock. A check
that only reads the stored rows and writes its own temporary tables (an import's dry run) does
not need the lock: SQLite keeps temporary tables in a database of the connection's own, and in
WAL mode a reader never waits for the writer nor makes it wait. ``lock_free_atomic`` begins
such a transaction ``DEFERRED``, so a bedside entry is saved while a large file is checked.
On PostgreSQL (rows are locked, not the database) it is a plain ``transaction.atomic()``.

Writing a stored table inside it would take the lock after all, and fail at once if another
writer has committed since the transaction's first read; ``holds_no_write_lock`` lets a writer
that must go on meanwhile (a job's progress) use a connection of its own instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction

_LOCK_FREE = "crsrisk_lock_free"


@contextmanager
def lock_free_atomic() -> Iterator[None]:
    """``transaction.atomic()``, begun ``DEFERRED`` on SQLite when it is the outermost block."""
    conn = transaction.get_connection()
    if conn.vendor != "sqlite" or conn.in_atomic_block:
        with transaction.atomic():
            yield
        return
    conn.ensure_connection()  # connecting resets the mode from the settings
    mode = conn.transaction_mode
    conn.transaction_mode = "DEFERRED"
    try:
        with transaction.atomic():
            conn.transaction_mode = mode  # only this BEGIN is deferred
            setattr(conn, _LOCK_FREE, True)
            try:
                yield
            finally:
                setattr(conn, _LOCK_FREE, False)
    finally:
        conn.transaction_mode = mode


def holds_no_write_lock() -> bool:
    """True inside ``lock_free_atomic`` on SQLite: a write on this connection would take the lock."""
    conn = transaction.get_connection()
    return bool(conn.in_atomic_block and getattr(conn, _LOCK_FREE, False))


# SQLite's busy handler does not queue the writers that wait for the lock: each one sleeps and
# tries again, at most 100 ms apart once it has waited a while. A job that begins its next
# transaction as soon as it commits would take the lock again before a waiting bedside entry
# wakes, chunk after chunk, and that entry could wait out its timeout across many short commits.
SQLITE_HANDOFF_SECONDS = 0.12


def hand_over_write_lock() -> None:
    """Between a job's commits on SQLite: pause so that a writer waiting for the lock takes it.

    Longer than the busy handler's longest sleep, so a waiting writer wakes inside the pause.
    Nothing inside a transaction (the lock is not free then) nor on PostgreSQL (rows are
    locked, not the database, and its lock waiters are queued).
    """
    conn = transaction.get_connection()
    if conn.vendor == "sqlite" and not conn.in_atomic_block:
        time.sleep(SQLITE_HANDOFF_SECONDS)
