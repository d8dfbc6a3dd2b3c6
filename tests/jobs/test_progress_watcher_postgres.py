"""Import progress is visible while the import's transaction is still open: PostgreSQL only.

The progress goes through a connection of its own (``jobs.services.ProgressChannel``). On SQLite
the reading of a labs file holds no write lock and its progress is seen at once too
(tests/jobs/test_sqlite_check_lock.py); this file is not collected on SQLite
(tests/jobs/conftest.py) rather than skipped.
"""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test import Client

import scoring.services
from crsrisk.jobs.models import ImportUpload, Job
from patients.models import LabResult
from tests.conftest import run_queued_jobs
from tests.jobs.test_web_import import THREE_PATIENTS, _spy, _three_patients, confirm, upload


@pytest.mark.django_db(transaction=True)
def test_a_watcher_sees_the_progress_while_the_imports_transaction_is_open(
    hematologist, clinician, team, patient, monkeypatch
):
    """PostgreSQL: the progress goes through a connection of its own and commits at once, while
    the file is read in a transaction whose rows are not visible yet; the recompute after the
    rows' commit counts its chunks of patients."""
    _three_patients(clinician, team)
    monkeypatch.setattr(scoring.services, "ACTIVATION_CHUNK", 1)  # a commit per patient
    client = Client()
    client.force_login(hematologist)
    upload(client, THREE_PATIENTS)
    run_queued_jobs()
    confirm(client, ImportUpload.objects.get())
    watcher = connections.create_connection(DEFAULT_DB_ALIAS)
    watched: list[tuple] = []

    def watch(job_id: int) -> None:
        with watcher.cursor() as cursor:
            cursor.execute(
                "SELECT progress_done, progress_total, progress_note FROM jobs_job WHERE id = %s", [job_id]
            )
            row = cursor.fetchone()
            cursor.execute("SELECT count(*) FROM patients_labresult")
            watched.append((*row, cursor.fetchone()[0], connection.in_atomic_block))

    _spy(monkeypatch, [], watch)
    try:
        run_queued_jobs()
    finally:
        watcher.close()
    inside = [w for w in watched if w[4]]  # written while a transaction of the import was open
    assert any(
        w[2] == "Reading and checking the file (read twice: its MRNs first, then its rows)"
        and w[0] > 0
        and w[3] == 0  # nothing of the file visible yet
        for w in inside
    )
    # The rows committed (all three visible), then a chunk of patients per commit.
    assert [w[:4] for w in watched if w[2] == "Recomputing the patients"] == [
        (1, 3, "Recomputing the patients", 3),
        (2, 3, "Recomputing the patients", 3),
        (3, 3, "Recomputing the patients", 3),
    ]
    assert LabResult.objects.count() == 3
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    assert job.status == Job.Status.SUCCEEDED and job.progress_note == "Imported"
