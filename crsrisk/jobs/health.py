"""What ``/health/`` reports: the database, the queue and the workers' last sign of life."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, connection
from django.db.models import Min
from django.utils import timezone
from django_q.models import OrmQ

from crsrisk.jobs.models import WorkerBeat

# The heartbeat task runs every minute; a worker silent for longer than this is reported stale.
WORKER_STALE_SECONDS = 180


def health_report() -> dict[str, Any]:
    """A JSON-safe report; never raises when the database is down (it says so instead)."""
    now = timezone.now()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        # django-q2's ORM broker enqueues with lock=now and, when a worker takes a task, moves
        # its lock to now + Q_CLUSTER retry (> timeout): lock <= now is a task not taken (or
        # one whose worker died, due again), never one being run.
        oldest = OrmQ.objects.filter(lock__lte=now).aggregate(oldest=Min("lock"))["oldest"]
        beats = list(WorkerBeat.objects.order_by("-seen_at").values("seen_at"))
    except DatabaseError:
        connection.close_if_unusable_or_obsolete()
        return {"status": "unavailable", "database": "unavailable", "queue": None, "workers": None}
    waiting = OrmQ.objects.filter(lock__lte=now).count()
    last_seen = beats[0]["seen_at"] if beats else None
    worker_age = (now - last_seen).total_seconds() if last_seen else None
    workers_ok = worker_age is not None and worker_age <= WORKER_STALE_SECONDS
    return {
        "status": "ok" if workers_ok else "degraded",
        "database": "ok",
        "queue": {
            "waiting": waiting,
            "oldest_waiting_seconds": round((now - oldest).total_seconds(), 1) if oldest else 0,
        },
        "workers": {
            "status": "ok" if workers_ok else "stale",
            "last_seen_seconds": round(worker_age, 1) if worker_age is not None else None,
            # A count, not names: the endpoint is public inside the network.
            "machines": len(beats),
        },
    }
