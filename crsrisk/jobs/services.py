"""Start, run and finish background jobs (django-q2 on the project's database).

``job_start`` writes the ``Job`` row and its queue entry in one transaction, so a job is
either queued and recorded or neither. ``job_run`` is what a worker executes: it claims the
row, runs the action (which is all-or-nothing, or commits in steps that a rerun completes),
and records the result or the errors. A worker killed mid-job never acknowledged its task:
django-q2 delivers it again after ``retry`` seconds and ``job_run`` starts the action over.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.utils import timezone
from django.utils.translation import gettext as _
from django_q.tasks import async_task

from crsrisk.jobs.models import Job, WorkerBeat
from crsrisk.transactions import holds_no_write_lock

logger = logging.getLogger("crsrisk.jobs")

RUN_TASK = "crsrisk.jobs.services.job_run"
DATABASE_WAIT_SECONDS = 120  # how long a job waits for its database to return before it fails
PROGRESS_NOTE_MAX = 300


class Progress(Protocol):
    """Where a job is: ``done`` of ``total`` items, or of ``total`` bytes with ``unit="bytes"``."""

    def __call__(self, done: int, total: int, unit: str = "") -> None: ...


Runner = Callable[[Job, Progress, Callable[[str], None]], dict[str, Any]]


class JobAlreadyRunning(ValidationError):
    """The same action is already queued or running."""


def job_start(*, kind: str, user: Any, params: dict[str, Any], exclusive: bool = True) -> Job:
    """Record a job and queue it in one transaction; refuse a second job of the same kind meanwhile
    (unless ``exclusive`` is false: checks of different uploads run side by side)."""
    with transaction.atomic():
        if (
            exclusive
            and Job.objects.select_for_update()
            .filter(kind=kind, status__in=(Job.Status.QUEUED, Job.Status.RUNNING))
            .exists()
        ):
            raise JobAlreadyRunning(
                _("A %(kind)s job is already queued or running: wait for it to finish.")
                % {"kind": Job.Kind(kind).label}
            )
        job = Job.objects.create(kind=kind, started_by=user, params=_json_safe(params))
        async_task(RUN_TASK, job.pk, task_name=f"job-{job.pk}-{kind}", group=kind)
    logger.info("job %s %s queued by %s", job.pk, kind, getattr(user, "username", "-"))
    return job


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif hasattr(value, "pk"):
            out[key] = value.pk
        else:
            out[key] = value
    return out


def job_run(job_id: int) -> str:
    """Run a queued job to its end (the task a worker executes); returns its final status."""
    beat()
    for _attempt in range(settings.JOB_MAX_ATTEMPTS + 1):
        try:
            return _run_once(job_id)
        except (OperationalError, InterfaceError):
            # The database went away mid-job: its transaction rolled back. Wait for it and
            # start over; every action is all-or-nothing or completes when it runs again.
            logger.warning("job %s: database unavailable, waiting to run it again", job_id)
            _wait_for_database(DATABASE_WAIT_SECONDS)
    return _finish(
        job_id,
        Job.Status.FAILED,
        errors=[_("The database failed repeatedly during the job; nothing of it was applied.")],
    )


def _run_once(job_id: int) -> str:
    job = _claim(job_id)
    if job is None:
        return "done"
    if job.attempts > settings.JOB_MAX_ATTEMPTS:
        return _finish(
            job.pk,
            Job.Status.FAILED,
            errors=[
                _("The job was interrupted %(n)d times (a worker stopped); nothing of it was applied.")
                % {"n": job.attempts - 1}
            ],
        )
    runner = RUNNERS[job.kind]
    channel = ProgressChannel(job.pk)
    try:
        result = runner(job, channel.progress, channel.note)
    except ValidationError as exc:
        return _finish(job.pk, Job.Status.FAILED, errors=list(exc.messages))
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        logger.exception("job %s %s failed", job.pk, job.kind)
        return _finish(
            job.pk,
            Job.Status.FAILED,
            errors=[_("Internal error: nothing of the job was applied. The error was logged.")],
        )
    finally:
        channel.close()
    return _finish(job.pk, Job.Status.SUCCEEDED, result=result)


@transaction.atomic
def _claim(job_id: int) -> Job | None:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.finished:
        return None
    job.status = Job.Status.RUNNING
    job.attempts += 1
    job.started_at = job.started_at or timezone.now()
    job.progress_done = 0
    job.save(update_fields=["status", "attempts", "started_at", "progress_done", "updated_at"])
    return job


def _finish(
    job_id: int, status: str, *, result: dict[str, Any] | None = None, errors: list[str] | None = None
) -> str:
    now = timezone.now()
    changes: dict[str, Any] = {"status": status, "finished_at": now, "updated_at": now}
    if result is not None:
        changes["result"] = result
    if errors is not None:
        changes["errors"] = errors
    with transaction.atomic():
        Job.objects.filter(pk=job_id).update(**changes)
        if status == Job.Status.SUCCEEDED:
            job = Job.objects.get(pk=job_id)
            if job.progress_total:
                Job.objects.filter(pk=job_id).update(progress_done=job.progress_total)
    logger.info("job %s %s", job_id, status)
    return str(status)


class ProgressChannel:
    """Writes a job's progress and note where the job page sees them while the job runs.

    Outside a transaction a write is a short commit of its own on the job's connection.
    Inside one (an import is a single transaction), a write on that connection would only be
    seen when the action ends; so on PostgreSQL it goes through a second connection, opened
    from the same database settings and used for nothing else, in autocommit: the watcher sees
    it at once. It never waits for a lock (``lock_timeout``) and a failed write is dropped,
    never the job. When the Job row itself is not committed yet (a test's transaction), the
    second connection cannot see it and the write falls back to the job's connection.

    On SQLite the same holds inside a transaction that takes no write lock (an import's check,
    ``crsrisk.transactions.lock_free_atomic``). Inside one that holds it (the import itself),
    a second connection would wait for that lock (one writer at a time), so the write stays on
    the job's connection and becomes visible with the action's commit: there the job page
    shows the stage notes written between transactions, not the progress inside one.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._own: Any = None

    def progress(self, done: int, total: int, unit: str = "") -> None:
        self._write(
            {
                "progress_done": max(0, min(done, total)),
                "progress_total": max(0, total),
                "progress_unit": unit,
            }
        )

    def note(self, text: str) -> None:
        self._write({"progress_note": text[:PROGRESS_NOTE_MAX]})

    def _write(self, values: dict[str, Any]) -> None:
        values = {**values, "updated_at": timezone.now()}
        if (
            transaction.get_connection().in_atomic_block
            and (connection.vendor == "postgresql" or holds_no_write_lock())
            and self._write_apart(values)
        ):
            return
        Job.objects.filter(pk=self.job_id).update(**values)

    def _write_apart(self, values: dict[str, Any]) -> bool:
        """The write through the second connection; False when it did not reach the row."""
        table = connection.ops.quote_name(Job._meta.db_table)
        columns = ", ".join(
            f"{connection.ops.quote_name(Job._meta.get_field(k).column)} = %s" for k in values
        )
        try:
            if self._own is None:
                self._own = connections.create_connection(DEFAULT_DB_ALIAS)
                with self._own.cursor() as cursor:
                    if self._own.vendor == "postgresql":
                        cursor.execute("SET lock_timeout = '2s'")
                    else:
                        cursor.execute("PRAGMA busy_timeout = 2000")
            with self._own.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET {columns} WHERE id = %s",  # noqa: S608 (names from the model)
                    [*values.values(), self.job_id],
                )
                return bool(cursor.rowcount)
        except DatabaseError:
            logger.warning("job %s: a progress write failed; the job goes on", self.job_id)
            self.close()
            return True  # dropped: the job's own transaction must not wait for it either

    def close(self) -> None:
        if self._own is not None:
            with contextlib.suppress(DatabaseError):
                self._own.close()
            self._own = None


def _wait_for_database(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        close_old_connections()
        try:
            connection.close()
            connection.ensure_connection()
            return
        except DatabaseError:
            time.sleep(0.5)


def beat() -> None:
    """Record this machine's worker as alive (run by every job and by a task every minute)."""
    WorkerBeat.objects.update_or_create(
        host=socket.gethostname()[:255], defaults={"pid": _pid(), "seen_at": timezone.now()}
    )


def _pid() -> int:
    return os.getpid()


# --- the actions ------------------------------------------------------------------------------


def _user(job: Job) -> Any:
    return get_user_model().objects.get(pk=job.started_by_id)


def run_model_activation(job: Job, progress: Progress, note: Callable[[str], None]) -> dict[str, Any]:
    """Activate a score model version; the active version changes only when every patient has
    results under it (``score_model_activate`` decides how it commits)."""
    from scoring.models import ModelStatus, ScoreModel
    from scoring.services import recompute_all, score_model_activate

    model = ScoreModel.objects.filter(pk=job.params["model_id"]).first()
    if model is None:
        raise ValidationError(_("The model of this job no longer exists."))
    if job.attempts > 1 and model.status == ModelStatus.ACTIVE:
        # Delivered again after the activation committed but before the job said so: the
        # results are complete already; a recompute from scratch changes nothing and confirms it.
        count = recompute_all(model=model)
    else:
        kwargs: dict[str, Any] = {
            "model": model,
            "user": _user(job),
            "expected_revision": job.params.get("revision"),
            # Delivered again: a worker killed mid-way left its mark and some chunks; start over.
            "resume": job.attempts > 1,
        }
        # The chunked activation reports its progress (done, total); an older one does not.
        if "on_progress" in inspect.signature(score_model_activate).parameters:
            kwargs["on_progress"] = progress
        count = score_model_activate(**kwargs)
    progress(count, count)
    return {"model": model.name, "patients": count}


def run_model_fit(job: Job, progress: Progress, note: Callable[[str], None]) -> dict[str, Any]:
    """Fit on the local cohort and store the draft and its report exactly as ``fit_model`` does."""
    from scoring.fitting import engine
    from scoring.fitting.local import FitNotStorable, run_local_fit, storable_spec, store_fitted_draft
    from scoring.models import ScoreModel

    params = job.params
    design = engine.DESIGN_LANDMARK if params.get("landmark") else engine.DESIGN_AS_PUBLISHED
    try:
        fit_settings = engine.FitSettings(
            design=design,
            n_bootstrap=int(params["bootstrap"]),
            seed=int(params["seed"]),
            base=None if params.get("base") in (None, "") else float(params["base"]),
        )
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    user = _user(job)
    name = params["name"]
    active = ScoreModel.objects.active()
    try:
        fit = run_local_fit(
            settings=fit_settings, name=name, username=user.get_username(), model=active, progress=note
        )
        spec = storable_spec(fit.spec, fit.report)
    except (engine.FitRefused, FitNotStorable) as exc:
        raise ValidationError(_("Not fitted: %(why)s") % {"why": exc}) from None
    model = store_fitted_draft(fit=fit, spec=spec, user=user, source=active, name=name, design=design)
    return {
        "model": model.name,
        "patients": fit.report["cohort"]["analysed"],
        "events": fit.report["cohort"]["events"],
        "excluded": len(fit.cohort.exclusions),
    }


def run_site_parameters(job: Job, progress: Progress, note: Callable[[str], None]) -> dict[str, Any]:
    """Change the site parameters (one transaction), then recompute every patient in chunks."""
    from patients import services as patient_services
    from patients.models import CareTeam, Patient

    data = dict(job.params)
    version, reason = data.pop("version"), data.pop("reason")
    if "default_care_team" in data and data["default_care_team"] is not None:
        data["default_care_team"] = CareTeam.objects.filter(pk=data["default_care_team"]).first()
    if "bcell_threshold" in data:
        data["bcell_threshold"] = Decimal(data["bcell_threshold"])
    from patients.models import SiteParameters
    from scoring.services import recompute_all_in_chunks

    total = Patient.objects.count()
    progress(0, total)
    params = SiteParameters.load()
    if job.attempts > 1 and version is not None and params.version > version:
        # Delivered again after the change committed (the worker died in the recompute):
        # the change stands; the recompute, chunk by chunk, runs again from the start.
        recompute_all_in_chunks()
    else:
        params = patient_services.site_parameters_update(
            user=_user(job), expected_version=version, reason=reason, **data
        )
    progress(total, total)
    return {"version": params.version, "patients": total}


def run_import_check(job: Job, progress: Progress, note: Callable[[str], None]) -> dict[str, Any]:
    from patients.uploads import run_import_check as run

    return run(job, progress, note)


def run_import_file(job: Job, progress: Progress, note: Callable[[str], None]) -> dict[str, Any]:
    from patients.uploads import run_import_file as run

    return run(job, progress, note)


RUNNERS: dict[str, Runner] = {
    Job.Kind.MODEL_ACTIVATION: run_model_activation,
    Job.Kind.MODEL_FIT: run_model_fit,
    Job.Kind.SITE_PARAMETERS: run_site_parameters,
    Job.Kind.IMPORT_CHECK: run_import_check,
    Job.Kind.IMPORT_RUN: run_import_file,
}
