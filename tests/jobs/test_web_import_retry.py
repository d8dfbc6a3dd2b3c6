"""An import job that runs again (a database error, a worker that died after the commit) keeps
its promise: the upload is still there for the retry, and a finished import is not redone
(review findings of 5 December)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.test import Client

from crsrisk.jobs.models import ImportUpload, ImportUploadChunk, Job
from crsrisk.jobs.services import job_run
from patients import imports
from patients.models import DataTransfer, LabResult, Patient
from tests.conftest import run_queued_jobs
from tests.jobs.test_web_import import GOOD, confirm, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def hema_client(hematologist: User, patient: Patient) -> Client:
    client = Client()
    client.force_login(hematologist)
    return client


def _checked(client) -> ImportUpload:
    upload(client, GOOD)
    run_queued_jobs()
    stored = ImportUpload.objects.get()
    assert stored.status == ImportUpload.Status.CHECKED
    return stored


@pytest.mark.django_db(transaction=True)
def test_an_import_stopped_by_a_database_error_runs_again_with_its_upload(hema_client, monkeypatch):
    stored = _checked(hema_client)
    real = imports.run_import
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return real(*args, **kwargs)

    monkeypatch.setattr(imports, "run_import", flaky)
    confirm(hema_client, stored)
    run_queued_jobs()
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    assert len(calls) == 2
    assert job.status == Job.Status.SUCCEEDED, job.errors
    assert LabResult.objects.count() > 0
    assert not ImportUpload.objects.exists()  # purged once the import is done


def test_a_job_delivered_again_after_its_import_committed_does_not_import_again(hema_client):
    stored = _checked(hema_client)
    confirm(hema_client, stored)
    run_queued_jobs()
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    first = dict(job.result)
    labs = LabResult.objects.count()
    transfers = DataTransfer.objects.count()
    # The worker died after the import's commit, before the job was marked done: delivered again.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, finished_at=None)
    assert job_run(job.pk) == Job.Status.SUCCEEDED
    job.refresh_from_db()
    assert job.result == first and first["ok"] and first["transfer"]
    assert (LabResult.objects.count(), DataTransfer.objects.count()) == (labs, transfers)


class _ReplacedWhileRead:
    """An uploaded file whose reading lets a second upload of the same user in (a double click)."""

    def __init__(self, data: bytes, on_read) -> None:
        self.data, self.pos, self.on_read, self.fired = data, 0, on_read, False

    def seek(self, pos: int) -> None:
        self.pos = pos

    def read(self, size: int) -> bytes:
        if self.pos and not self.fired:
            self.fired = True
            self.on_read()
        block = self.data[self.pos : self.pos + size]
        self.pos += len(block)
        return block


@pytest.mark.django_db(transaction=True)
def test_a_second_upload_while_the_first_is_stored_replaces_it_with_a_message(
    hematologist, patient, settings
):
    from django.core.exceptions import ValidationError

    from patients.uploads import REPLACED, upload_store

    settings.IMPORT_UPLOAD_CHUNK_BYTES = 64
    newer = []

    def second() -> None:
        file = _ReplacedWhileRead(b"x", lambda: None)
        stored = upload_store(user=hematologist, kind="labs", filename="b.csv", file=file, **OPTIONS)
        newer.append(stored)

    with pytest.raises(ValidationError) as replaced:
        upload_store(
            user=hematologist,
            kind="labs",
            filename="a.csv",
            file=_ReplacedWhileRead(GOOD.encode(), second),
            **OPTIONS,
        )
    assert replaced.value.messages == [str(REPLACED)]
    # The newer upload is the user's file; nothing of the older one is left.
    assert list(ImportUpload.objects.values_list("pk", "filename")) == [(newer[0].pk, "b.csv")]
    assert not ImportUploadChunk.objects.exclude(upload_id=newer[0].pk).exists()


def test_the_page_answers_the_replaced_upload_with_its_message_not_an_error(hema_client, monkeypatch):
    from django.core.exceptions import ValidationError

    import patients.transfer_views
    from patients.uploads import REPLACED

    def replaced(**kwargs):
        raise ValidationError(REPLACED)

    monkeypatch.setattr(patients.transfer_views, "upload_store", replaced)
    response = upload(hema_client, GOOD)
    assert response.status_code == 400
    assert "replaced by a newer one of yours" in response.content.decode()


OPTIONS = {"correct": False, "reason": ""}
