"""A worker killed mid-job leaves no half-state: the job is delivered again and finishes (issue 11)."""

from __future__ import annotations

import time
from datetime import date

import pytest
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections

from crsrisk.jobs.models import Job
from crsrisk.jobs.services import job_start
from patients.demo import seed_demo
from patients.models import Patient
from scoring.models import ModelStatus, PatientSummary, ScoreModel
from scoring.rules.score import PROVISIONAL_V0, model_spec_to_dict
from tests.invariants import assert_stored_equals_scratch
from tests.load.conftest import stop, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PATIENTS = 30  # enough for the activation to take a few seconds
RETRY_SECONDS = 20  # JOB_TIMEOUT_SECONDS 15 + margin 5: the killed job's redelivery


def _hold_first_patient():
    """A connection of its own holding the first patient's row lock until it rolls back."""
    holder = connections.create_connection(DEFAULT_DB_ALIAS)
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute("SELECT id FROM patients_patient ORDER BY id LIMIT 1 FOR UPDATE")
    return holder


def _job(pk: int) -> Job:
    close_old_connections()
    return Job.objects.get(pk=pk)


def test_a_killed_worker_leaves_no_half_state_and_the_job_finishes_when_delivered_again(
    qcluster_factory, tmp_path
):
    seed_demo(today=date(2026, 1, 15), password="demo-password-2025!", n_patients=PATIENTS)
    hematologist = User.objects.get(username="demo-hematologist")
    draft = ScoreModel.objects.create(
        name="local-v1",
        provenance="edited",
        status=ModelStatus.DRAFT,
        spec={**model_spec_to_dict(PROVISIONAL_V0), "name": "local-v1"},
    )
    job = job_start(
        kind=Job.Kind.MODEL_ACTIVATION,
        user=hematologist,
        params={"model_id": draft.pk, "revision": draft.revision},
    )
    env = {"JOB_TIMEOUT_SECONDS": "15", "JOB_RETRY_MARGIN_SECONDS": "5", "JOB_POLL_SECONDS": "0.2"}

    # The worker must be killed mid-activation whatever the machine's speed (a fast recompute of
    # the demo ward ends within the second): another connection holds the lock of the first
    # patient, which the activation's first chunk waits for, as it would for a long write.
    holder = _hold_first_patient()
    try:
        cluster = qcluster_factory(**env)
        took = wait_until(lambda: _job(job.pk).status != Job.Status.QUEUED, timeout=60)
        assert took, "no worker took the job: " + (tmp_path / "qcluster.log").read_text()[-3000:]
        time.sleep(1.0)
        stop(cluster, kill=True)  # SIGKILL: the cluster, its workers, mid-activation
        killed_at = time.monotonic()
    finally:
        holder.rollback()
        holder.close()

    assert _job(job.pk).status == Job.Status.RUNNING, "the job ended before the kill: make it longer"
    draft.refresh_from_db()
    # The committed chunks and the mark outlive the worker (its cleanup never ran); the old
    # version stays active, so what the ward sees is unchanged.
    assert draft.status == ModelStatus.DRAFT
    assert ScoreModel.objects.active().name == "provisional-v0"
    for patient in Patient.objects.all():
        assert_stored_equals_scratch(patient)

    qcluster_factory(**env)
    assert wait_until(lambda: _job(job.pk).finished, timeout=RETRY_SECONDS + 60, interval=0.5)
    redelivered_after = time.monotonic() - killed_at
    job.refresh_from_db()
    draft.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.errors
    assert job.attempts == 2 and redelivered_after >= RETRY_SECONDS - 5
    assert job.result == {"model": "local-v1", "patients": PATIENTS}
    # The redelivered job resumed its own interrupted activation: mark cleared, started over.
    assert draft.status == ModelStatus.ACTIVE and draft.activation_started_at is None
    for patient in Patient.objects.all():
        assert_stored_equals_scratch(patient)


def test_a_job_stopped_at_its_timeout_is_delivered_again_and_then_marked_failed(qcluster_factory, tmp_path):
    """django-q2 stops a job at its timeout as a failed task; the Job row must not stay RUNNING."""
    seed_demo(today=date(2026, 1, 15), password="demo-password-2025!", n_patients=PATIENTS)
    hematologist = User.objects.get(username="demo-hematologist")
    draft = ScoreModel.objects.create(
        name="local-v1",
        provenance="edited",
        status=ModelStatus.DRAFT,
        spec={**model_spec_to_dict(PROVISIONAL_V0), "name": "local-v1"},
    )
    job = job_start(
        kind=Job.Kind.MODEL_ACTIVATION,
        user=hematologist,
        params={"model_id": draft.pk, "revision": draft.revision},
    )
    # The activation must outlast its timeout whatever the machine's speed (see above).
    holder = _hold_first_patient()
    try:
        # One attempt allowed, stopped after 1 s, delivered again 2 s later.
        qcluster_factory(
            JOB_TIMEOUT_SECONDS="1",
            JOB_RETRY_MARGIN_SECONDS="1",
            JOB_MAX_ATTEMPTS="1",
            JOB_POLL_SECONDS="0.2",
        )
        log = tmp_path / "qcluster.log"
        finished = wait_until(lambda: _job(job.pk).finished, timeout=60, interval=0.5)
    finally:
        holder.rollback()
        holder.close()
    assert finished, log.read_text()[-3000:]
    job.refresh_from_db()
    draft.refresh_from_db()
    assert "exceeded maximum timeout" in log.read_text(), "the job was not stopped: make it longer"
    assert job.status == Job.Status.FAILED and job.attempts == 2, (job.status, job.attempts, job.errors)
    assert job.errors
    assert draft.status == ModelStatus.DRAFT and draft.activation_started_at is None
    assert ScoreModel.objects.active().name == "provisional-v0"
    assert not PatientSummary.objects.filter(model=draft).exists()
    for patient in Patient.objects.all():
        assert_stored_equals_scratch(patient)
