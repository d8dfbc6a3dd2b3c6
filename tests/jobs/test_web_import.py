"""Large imports from the web page (issue 11): upload to the database, background check,
preview, confirmation, background import, purge; access to one's own upload only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crsrisk.accounts.models import AccessLog
from crsrisk.jobs.models import ImportUpload, ImportUploadChunk, Job
from patients import services
from patients.models import DataTransfer, LabResult, Patient
from patients.uploads import UploadReader, upload_digest
from tests.conftest import make_user, run_queued_jobs
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db

HEADER = "mrn,collected_at,analyte,value,unit,note\n"
CRP_ROW = "P001,2025-03-08T06:30:00+00:00,crp,25,mg/dL,\n"
GOOD = HEADER + CRP_ROW + "P001,2025-03-08T06:30:00+00:00,anc,0.2,10^9/L,\n"
BAD = HEADER + CRP_ROW + 'P001,2025-03-08T06:30:00+00:00,anc,"0,2",10^9/L,\n'


def upload(client: Client, text: str | bytes, kind: str = "labs", name: str = "labs.csv", **extra: str):
    data = text.encode("utf-8") if isinstance(text, str) else text
    payload = {"kind": kind, "file": SimpleUploadedFile(name, data, content_type="text/csv"), **extra}
    return client.post(reverse("patients:import"), payload)


def confirm(client: Client, stored: ImportUpload):
    stored.refresh_from_db()
    url = reverse("patients:import-upload-confirm", args=[stored.pk])
    return client.post(url, {"digest": upload_digest(stored)})


@pytest.fixture
def hema_client(hematologist: User, patient: Patient) -> Client:
    client = Client()
    client.force_login(hematologist)
    return client


def test_upload_check_preview_confirm_imports_and_purges(hema_client, hematologist, settings):
    settings.IMPORT_UPLOAD_CHUNK_BYTES = 64  # several chunks, in order
    response = upload(hema_client, GOOD)
    stored = ImportUpload.objects.get()
    assert response["Location"] == reverse("patients:import-upload", args=[stored.pk])
    assert stored.uploaded_by == hematologist and stored.size == len(GOOD) and len(stored.sha256) == 64
    assert stored.chunks.count() == -(-len(GOOD) // 64)
    assert UploadReader(stored).read() == GOOD.encode()  # the chunks read back in order
    assert "pending_import" not in hema_client.session
    # While the check job waits, the page says so and refreshes itself; nothing is imported.
    page = hema_client.get(response["Location"]).content.decode()
    assert "being checked in the background" in page and 'http-equiv="refresh"' in page
    check = Job.objects.get(kind=Job.Kind.IMPORT_CHECK)
    assert check.started_by == hematologist and check.params == {"upload": stored.pk}

    run_queued_jobs()
    check.refresh_from_db()
    assert check.status == Job.Status.SUCCEEDED
    assert not LabResult.objects.exists()
    page = hema_client.get(response["Location"]).content.decode()
    assert "every row is valid" in page and "Confirm the import" in page
    assert 'http-equiv="refresh"' not in page
    assert DataTransfer.objects.filter(dry_run=True, accepted=True).count() == 1

    response = confirm(hema_client, stored)
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    assert response["Location"] == reverse("patients:import-job", args=[job.pk])
    assert "being imported in the background" in hema_client.get(response["Location"]).content.decode()
    # The upload's page, opened again meanwhile, leads to the import's job page.
    waiting = hema_client.get(reverse("patients:import-upload", args=[stored.pk])).content.decode()
    assert "This file is being imported." in waiting and response["Location"] in waiting
    # A second confirmation of the same file queues nothing more.
    confirm(hema_client, stored)
    assert Job.objects.filter(kind=Job.Kind.IMPORT_RUN).count() == 1

    run_queued_jobs()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert LabResult.objects.count() == 2
    assert not ImportUpload.objects.exists() and not ImportUploadChunk.objects.exists()
    record = DataTransfer.objects.get(dry_run=False)
    assert record.accepted and record.rows_created == 2 and record.user == hematologist
    result = hema_client.get(reverse("patients:import-job", args=[job.pk]))
    assert result["Location"] == reverse("patients:import-result", args=[record.pk])
    assert "labs.csv was imported" in hema_client.get(result["Location"]).content.decode()
    # The job page, open to every hematologist, says what happened without the file's rows.
    assert "The file of 2 rows was accepted." in hema_client.get(job.get_absolute_url()).content.decode()
    assert_stored_equals_scratch(Patient.objects.get())


def test_a_refused_file_shows_its_rows_and_stores_nothing(hema_client):
    upload(hema_client, BAD)
    run_queued_jobs()
    stored = ImportUpload.objects.get()
    assert stored.status == ImportUpload.Status.REFUSED and not stored.chunks.exists()
    page = hema_client.get(reverse("patients:import-upload", args=[stored.pk])).content.decode()
    assert "labs.csv was refused: nothing was imported (1 error(s))" in page
    assert "<code>0,2</code>" in page and "Confirm the import" not in page
    response = confirm(hema_client, stored)
    assert response.status_code == 302
    assert not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()
    assert not LabResult.objects.exists()


def test_a_file_over_the_limit_is_refused_with_its_size_and_nothing_is_stored(hema_client, settings):
    settings.IMPORT_UPLOAD_MAX_BYTES = 1024 * 1024
    response = upload(hema_client, HEADER + "x" * (1024 * 1024 + 1))
    assert response.status_code == 400
    assert "at most 1 MB are accepted" in response.content.decode()
    assert not ImportUpload.objects.exists() and not Job.objects.exists()


def test_the_upload_is_purged_when_the_import_is_refused(hema_client, hematologist, patient):
    upload(hema_client, GOOD)
    run_queued_jobs()
    stored = ImportUpload.objects.get()
    confirm(hema_client, stored)
    # The stored data change behind the check: the import checks again, refuses, keeps nothing.
    services.lab_record(
        user=hematologist,
        patient=patient,
        analyte="crp",
        value="30",
        unit="mg/dL",
        collected_at=datetime(2025, 3, 8, 6, 30, tzinfo=UTC),
        confirmed=True,
    )
    run_queued_jobs()
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    assert job.status == Job.Status.SUCCEEDED and job.result["ok"] is False
    assert not ImportUpload.objects.exists() and not ImportUploadChunk.objects.exists()
    assert LabResult.objects.count() == 1  # the one entered meanwhile
    record = DataTransfer.objects.get(dry_run=False)
    assert not record.accepted
    page = hema_client.get(reverse("patients:import-result", args=[record.pk])).content.decode()
    assert "nothing was imported" in page


def test_a_stale_unconfirmed_upload_is_purged_by_the_command_and_by_the_next_upload(hema_client, team):
    colleague = Client()
    colleague.force_login(make_user("dr.same", "hematologist", (team,)))
    upload(hema_client, GOOD)
    upload(colleague, GOOD)  # one upload waits per user: a second of one's own would replace the first
    run_queued_jobs()
    old, fresh = ImportUpload.objects.order_by("pk")
    ImportUpload.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    out = StringIO()
    call_command("purge_import_uploads", stdout=out)
    assert "purged 1 unconfirmed upload(s)" in out.getvalue()
    assert list(ImportUpload.objects.values_list("pk", flat=True)) == [fresh.pk]
    # An old upload whose import job is still queued is kept until that job ends.
    confirm(colleague, fresh)
    ImportUpload.objects.filter(pk=fresh.pk).update(created_at=timezone.now() - timedelta(hours=25))
    call_command("purge_import_uploads", stdout=StringIO())
    assert ImportUpload.objects.filter(pk=fresh.pk).exists()
    Job.objects.filter(kind=Job.Kind.IMPORT_RUN).update(status=Job.Status.FAILED)
    assert not ImportUploadChunk.objects.filter(upload_id=old.pk).exists()
    assert ImportUploadChunk.objects.filter(upload_id=fresh.pk).exists()
    # Any new upload purges the stale ones too (here: one whose import job died for good).
    upload(hema_client, GOOD)
    assert not ImportUpload.objects.filter(pk=fresh.pk).exists() and ImportUpload.objects.count() == 1


def test_only_the_uploader_sees_the_upload_its_preview_and_its_import(hema_client, team, other_team):
    upload(hema_client, GOOD)
    run_queued_jobs()
    stored = ImportUpload.objects.get()
    preview = reverse("patients:import-upload", args=[stored.pk])
    colleague = make_user("dr.other", "hematologist", (other_team,))
    same_team = make_user("dr.same", "hematologist", (team,))
    for user in (colleague, same_team):
        client = Client()
        client.force_login(user)
        assert client.get(preview).status_code == 404
        assert confirm(client, stored)["Location"] == reverse("patients:import")  # nothing to confirm
    for role, teams in (("clinician", (other_team,)), ("admin", ())):
        client = Client()
        client.force_login(make_user(f"u-{role}", role, teams))
        assert client.get(preview).status_code in (302, 403)
        assert client.get(reverse("patients:import")).status_code in (302, 403)
    assert not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()


def test_an_mrn_outside_the_users_teams_is_refused_and_logged(hema_client, other_team, hematologist):
    upload(hema_client, GOOD.replace("P001", "Q999"))
    run_queued_jobs()
    stored = ImportUpload.objects.get()
    assert stored.status == ImportUpload.Status.REFUSED
    assert AccessLog.objects.filter(user=hematologist, mrn="Q999", granted=False).exists()


# --- progress: real steps, written where a watcher sees them ----------------------------------

THREE_PATIENTS = HEADER + "".join(
    f"{mrn},2025-03-08T06:30:00+00:00,crp,25,mg/dL,\n" for mrn in ("P001", "P002", "P003")
)


def _three_patients(clinician: User, team) -> None:
    for mrn in ("P002", "P003"):
        services.patient_register(
            user=clinician, mrn=mrn, name=mrn, infusion_date=datetime(2025, 3, 1).date(), care_team=team
        )


def _spy(monkeypatch, seen: list, watch=None) -> None:
    """Record every progress and note write of the jobs (and let them happen)."""
    from crsrisk.jobs.services import ProgressChannel

    write_progress, write_note = ProgressChannel.progress, ProgressChannel.note

    def progress(channel, done: int, total: int, unit: str = "") -> None:
        write_progress(channel, done, total, unit)
        seen.append((done, total, unit) if unit else (done, total))
        if watch is not None:
            watch(channel.job_id)

    def note(channel, text: str) -> None:
        write_note(channel, text)
        seen.append(text)

    monkeypatch.setattr(ProgressChannel, "progress", progress)
    monkeypatch.setattr(ProgressChannel, "note", note)


def test_the_jobs_report_their_stages_and_the_recompute_patient_by_chunk(
    hema_client, clinician, team, monkeypatch, settings
):
    import scoring.services

    _three_patients(clinician, team)
    monkeypatch.setattr(scoring.services, "RECOMPUTE_CHUNK", 1)
    # labs.csv: the patients are recomputed after the rows, a chunk per commit.
    monkeypatch.setattr(scoring.services, "ACTIVATION_CHUNK", 1)
    settings.IMPORT_UPLOAD_CHUNK_BYTES = 64
    upload(hema_client, THREE_PATIENTS)
    stored = ImportUpload.objects.get()
    seen: list = []
    _spy(monkeypatch, seen)
    run_queued_jobs()
    size = len(THREE_PATIENTS)
    # The check reads the file twice (labs.csv: its MRNs, then its rows), a chunk at a time.
    assert seen[:2] == [(0, 0), "Reading and checking the file (read twice: its MRNs first, then its rows)"]
    assert seen[2:4] == [(64, 2 * size, "bytes"), (128, 2 * size, "bytes")] and seen[-1] == "Checked"
    assert (2 * size, 2 * size, "bytes") in seen
    seen.clear()
    confirm(hema_client, stored)
    run_queued_jobs()
    notes = [s for s in seen if isinstance(s, str)]
    assert notes[:2] == [
        "Verifying the stored file",
        "Reading and checking the file (read twice: its MRNs first, then its rows)",
    ]
    assert notes[-3:] == ["Recomputing the patients", "Recomputing the patients", "Imported"]
    assert [s for s in seen if isinstance(s, tuple)][-3:] == [(1, 3), (2, 3), (3, 3)]
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    assert job.status == Job.Status.SUCCEEDED and (job.progress_done, job.progress_total) == (3, 3)
    assert LabResult.objects.count() == 3


def test_an_observations_check_counts_both_passes_over_the_file(hema_client, monkeypatch, settings):
    """observations.csv is streamed like labs.csv (read twice): the count runs to the end once."""
    header = "mrn,date,tmax_c,hypotension,oxygen,antipyretic,tocilizumab,corticosteroids\n"
    text = header + "".join(f"P001,2025-03-0{day},38.5,none,none,0,0,0\n" for day in range(2, 7))
    settings.IMPORT_UPLOAD_CHUNK_BYTES = 64
    upload(hema_client, text, kind="observations", name="observations.csv")
    seen: list = []
    _spy(monkeypatch, seen)
    run_queued_jobs()
    counts = [s for s in seen if isinstance(s, tuple) and s[1] == 2 * len(text)]
    assert counts and counts[-1] == (2 * len(text), 2 * len(text), "bytes")
    assert [c[0] for c in counts] == sorted(c[0] for c in counts)  # never reaches the end early
    assert sum(1 for c in counts if c[0] == c[1]) == 1
    assert ImportUpload.objects.get().status == ImportUpload.Status.CHECKED


def test_the_stored_report_of_a_whole_read_file_is_bounded(hema_client, monkeypatch):
    import patients.uploads

    monkeypatch.setattr(patients.uploads, "ERRORS_SHOWN", 2)
    header = "mrn,date,tmax_c,hypotension,oxygen,antipyretic,tocilizumab,corticosteroids\n"
    rows = "".join(f"P001,2025-03-0{day},hot,none,none,0,0,0\n" for day in range(2, 7))
    upload(hema_client, header + rows, kind="observations", name="observations.csv")
    run_queued_jobs()
    stored = ImportUpload.objects.get()
    assert stored.status == ImportUpload.Status.REFUSED
    assert [e["line"] for e in stored.report["errors"]] == [2, 3]
    assert stored.report["error_count"] == 5
    assert stored.report["hidden_error_lines"] == [
        "observations.csv: 3 more problems in column tmax_c are not listed."
    ]
    page = hema_client.get(reverse("patients:import-upload", args=[stored.pk])).content.decode()
    assert "3 more problems in column tmax_c are not listed." in page


def test_the_import_job_page_shows_the_stage_and_its_count(hema_client):
    upload(hema_client, GOOD)
    run_queued_jobs()
    response = confirm(hema_client, ImportUpload.objects.get())
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, progress_done=2, progress_total=3, progress_note="Recomputing the patients"
    )
    page = hema_client.get(response["Location"]).content.decode()
    assert "Recomputing the patients (2 of 3)" in page and 'value="67"' in page
    assert 'http-equiv="refresh"' in page


def test_the_reading_stage_shows_its_bytes_as_sizes_and_a_count_after_it_as_a_count(hema_client):
    upload(hema_client, GOOD)
    run_queued_jobs()
    response = confirm(hema_client, ImportUpload.objects.get())
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    reading = {"progress_note": "Reading and checking the file", "status": Job.Status.RUNNING}
    Job.objects.filter(pk=job.pk).update(
        **reading, progress_done=3_500_000, progress_total=14_000_000, progress_unit="bytes"
    )
    for page in (
        hema_client.get(response["Location"]).content.decode(),
        hema_client.get(reverse("jobs:detail", args=[job.pk])).content.decode(),
    ):
        assert "3.3\xa0MB of 13.4\xa0MB read" in page and 'value="25"' in page
        assert "3500000" not in page and "14000000" not in page
    # The next stage counts patients again: its progress resets the unit.
    from crsrisk.jobs.services import ProgressChannel

    ProgressChannel(job.pk).progress(1, 4)
    job.refresh_from_db()
    assert job.progress_unit == ""
    assert "(1 of 4)" in hema_client.get(response["Location"]).content.decode()


def test_one_import_runs_at_a_time_and_the_other_preview_stays_confirmable(hema_client, team):
    colleague = Client()
    colleague.force_login(make_user("dr.same", "hematologist", (team,)))
    upload(hema_client, GOOD)
    upload(colleague, HEADER + "P001,2025-03-09T06:30:00+00:00,il6,300,pg/mL,\n")
    run_queued_jobs()
    first, second = ImportUpload.objects.order_by("pk")
    confirm(hema_client, first)
    waiting = confirm(colleague, second)
    assert waiting["Location"] == reverse("patients:import-upload", args=[second.pk])
    page = colleague.get(waiting["Location"]).content.decode()
    assert "already queued or running" in page and "Confirm the import" in page
    second.refresh_from_db()
    assert second.status == ImportUpload.Status.CHECKED
    run_queued_jobs()
    assert confirm(colleague, second)["Location"].startswith("/patients/files/import/job/")
    run_queued_jobs()
    assert LabResult.objects.count() == 3
    assert DataTransfer.objects.filter(dry_run=False, accepted=True).count() == 2
