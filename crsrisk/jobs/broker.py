"""django-q2's ORM broker, with a pusher that survives a database outage (issue 11, Deliver 4).

django-q2's pusher process reads the queue table. When a read fails, it logs the error,
sleeps a fixed 10 s (``django_q.pusher.pusher``), and exits for the sentinel to start a new
one, which sleeps another 10 s if the database is still down. So the workers took up to 10 s
after PostgreSQL's return to take work again. This broker treats a lost connection as an
empty queue instead: it drops the connection, waits one ``poll`` interval and reads again,
so the queue takes work within about one poll (1 s) of the database's return.

Nothing else changes: the workers and the monitor already drop a dead connection before each
task (``close_old_connections`` with ``CONN_HEALTH_CHECKS``), and a running job waits for the
database and runs again (``crsrisk.jobs.services.job_run``).
"""

from __future__ import annotations

import contextlib
import logging
import time

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django_q.brokers.orm import ORM
from django_q.conf import Conf

logger = logging.getLogger("crsrisk.jobs")


class DatabaseTolerantORM(ORM):
    """The ORM broker whose ``dequeue`` waits out a database outage instead of failing."""

    def dequeue(self):  # noqa: ANN201 - django-q2's signature: a list of (id, payload), or None
        try:
            return super().dequeue()
        except (OperationalError, InterfaceError) as exc:
            logger.warning("queue: database unavailable, reading again in %s s: %s", Conf.POLL, exc)
            with contextlib.suppress(DatabaseError):
                connections[Conf.ORM].close()  # the next read opens a new connection
            time.sleep(Conf.POLL)
            return None
