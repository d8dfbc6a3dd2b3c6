"""Import and export pages (SPEC 8.1, 8.2, 7): preview, confirm, refusals, scope, audit.

Every import goes through the database and the background jobs (patients/uploads.py): the
tests run the queued jobs as a worker would (``run_queued_jobs``), the import itself unmocked.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from crsrisk.accounts.models import AccessLog
from crsrisk.jobs.models import ImportUpload, ImportUploadChunk, Job
from patients import services
from patients.exports import FILE_ORDER, export_cohort
from patients.models import CareTeam, DataTransfer, LabResult, Patient
from patients.uploads import PREVIEW_MAX_AGE, upload_digest
from scoring.models import DailyAssessment
from tests.conftest import make_user, run_queued_jobs
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db

HEADER = "mrn,collected_at,analyte,value,unit,note\n"
CRP_ROW = "P001,2025-03-08T06:30:00+00:00,crp,25,mg/dL,\n"
GOOD = HEADER + CRP_ROW + "P001,2025-03-08T06:30:00+00:00,anc,0.2,10^9/L,\n"
BAD = HEADER + CRP_ROW + 'P001,2025-03-08T06:30:00+00:00,anc,"0,2",10^9/L,\n'
PATIENTS_HEADER = (
    "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct\n"
)


def upload(client: Client, text: str | bytes, kind: str = "labs", name: str = "labs.csv", **extra: str):
    data = text.encode("utf-8") if isinstance(text, str) else text
    payload = {"kind": kind, "file": SimpleUploadedFile(name, data, content_type="text/csv"), **extra}
    return client.post(reverse("patients:import"), payload)


def check(client: Client, text: str | bytes, **kwargs: str):
    """Upload a file and let the worker check it: the preview page."""
    response = upload(client, text, **kwargs)
    assert response.status_code == 302, response.content.decode()
    run_queued_jobs()
    return client.get(response["Location"])


def confirm(client: Client, stored: ImportUpload | None = None, digest: str | None = None):
    stored = stored or ImportUpload.objects.latest("pk")
    digest = upload_digest(stored) if digest is None else digest
    return client.post(reverse("patients:import-upload-confirm", args=[stored.pk]), {"digest": digest})


def confirm_and_import(client: Client):
    """Confirm the latest preview and let the worker import it: the job page's answer."""
    response = confirm(client)
    assert response["Location"].startswith("/patients/files/import/job/"), response["Location"]
    run_queued_jobs()
    return client.get(response["Location"])


def import_file(client: Client, text: str, **kwargs: str):
    check(client, text, **kwargs)
    return confirm_and_import(client)


@pytest.fixture
def hema_client(hematologist: User, patient: Patient) -> Client:
    client = Client()
    client.force_login(hematologist)
    return client


def test_upload_with_a_bad_row_lists_its_line_and_column_and_stores_nothing(hema_client):
    page = check(hema_client, BAD)
    assert page.status_code == 200
    errors = page.context["report"]["errors"]
    assert [(e["line"], e["column"], e["value"]) for e in errors] == [(3, "value", "0,2")]
    html = page.content.decode()
    assert "has a comma" in html and "<td>3</td>" in html and "<code>value</code>" in html
    assert "was refused: nothing was imported (1 error(s))" in html
    assert LabResult.objects.count() == 0
    assert not ImportUploadChunk.objects.exists()  # a refused file's bytes go at once
    assert "pending_import" not in hema_client.session
    transfer = DataTransfer.objects.get()
    assert (transfer.dry_run, transfer.accepted, transfer.rows_refused) == (True, False, 1)
    # The user's choices are kept on the form for the corrected file.
    assert page.context["upload_form"]["kind"].value() == "labs"


def test_valid_upload_previews_the_counts_and_stores_nothing(hema_client):
    response = upload(hema_client, GOOD)
    stored = ImportUpload.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("patients:import-upload", args=[stored.pk])
    # Until a worker checks it, the page says so and refreshes itself.
    waiting = hema_client.get(response["Location"]).content.decode()
    assert "being checked in the background" in waiting and 'http-equiv="refresh"' in waiting
    run_queued_jobs()
    preview = hema_client.get(response["Location"])
    assert preview.status_code == 200
    assert preview.context["report"]["created"] == 2
    html = preview.content.decode()
    assert "Rows to create" in html and upload_digest(ImportUpload.objects.get()) in html
    assert LabResult.objects.count() == 0
    assert DataTransfer.objects.get().dry_run is True


def test_confirm_imports_the_previewed_file_once_and_shows_the_summary(hema_client, patient):
    check(hema_client, GOOD)
    stored = ImportUpload.objects.get()
    response = confirm(hema_client)
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    assert response["Location"] == reverse("patients:import-job", args=[job.pk])
    page = hema_client.get(response["Location"]).content.decode()
    assert "being imported in the background" in page and 'http-equiv="refresh"' in page
    # The preview is single-use: a second confirmation queues nothing more.
    again = confirm(hema_client, stored=stored, digest=upload_digest(stored))
    assert again["Location"] == reverse("patients:import")
    assert "no longer valid" in hema_client.get(again["Location"]).content.decode()
    assert Job.objects.filter(kind=Job.Kind.IMPORT_RUN).count() == 1
    assert LabResult.objects.count() == 0  # nothing before the worker runs the job

    run_queued_jobs()
    transfer = DataTransfer.objects.filter(dry_run=False).get()
    result = hema_client.get(response["Location"])
    assert result["Location"] == reverse("patients:import-result", kwargs={"transfer": transfer.pk})
    assert LabResult.objects.filter(patient=patient).count() == 2
    summary = (transfer.accepted, transfer.rows_created, transfer.patients, transfer.username)
    assert summary == (True, 2, 1, "hema")
    assert_stored_equals_scratch(patient)
    html = hema_client.get(result["Location"]).content.decode()
    assert "labs.csv was imported." in html and "Rows created" in html
    assert not ImportUpload.objects.exists() and not ImportUploadChunk.objects.exists()  # purged
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.result["transfer"] == transfer.pk


def test_a_file_that_conflicts_by_confirmation_time_is_refused_and_the_result_says_so(
    hema_client, patient, hematologist
):
    check(hema_client, GOOD)
    when = datetime(2025, 3, 8, 6, 30, tzinfo=UTC)
    services.lab_record(
        user=hematologist,
        patient=patient,
        analyte="crp",
        value="30",
        unit="mg/dL",
        collected_at=when,
        confirmed=True,  # typed in mg/dL on the form, and confirmed
    )
    response = confirm_and_import(hema_client)
    transfer = DataTransfer.objects.get(dry_run=False)
    assert (transfer.accepted, transfer.rows_created) == (False, 0)
    assert LabResult.objects.filter(patient=patient).count() == 1  # the one entered meanwhile
    html = hema_client.get(response["Location"]).content.decode()
    assert "was refused on confirmation" in html and "conflict: crp of P001" in html
    assert not ImportUpload.objects.exists()


def test_the_result_page_does_not_show_a_dry_run_as_an_import(hema_client):
    check(hema_client, GOOD)
    dry_run = DataTransfer.objects.get(dry_run=True)
    url = reverse("patients:import-result", kwargs={"transfer": dry_run.pk})
    assert hema_client.get(url).status_code == 404


def test_a_tampered_digest_is_refused_and_stores_nothing(hema_client):
    check(hema_client, GOOD)
    response = confirm(hema_client, digest="0" * 64)
    assert response.status_code == 302 and response["Location"] == reverse("patients:import")
    assert not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()
    assert ImportUpload.objects.get().status == ImportUpload.Status.CHECKED  # the right digest still may
    page = hema_client.get(response["Location"])
    assert "no longer valid" in page.content.decode()
    run_queued_jobs()
    assert LabResult.objects.count() == 0


def test_a_non_ascii_digest_is_refused_without_an_error(hema_client):
    check(hema_client, GOOD)
    response = confirm(hema_client, digest="é" * 64)
    assert response.status_code == 302 and response["Location"] == reverse("patients:import")
    assert not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()


def test_stored_content_changed_after_the_preview_is_not_imported(hema_client):
    check(hema_client, GOOD)
    stored = ImportUpload.objects.get()
    response = confirm(hema_client)
    # The stored bytes change behind the preview (the digest still names the previewed ones).
    ImportUploadChunk.objects.filter(upload=stored).update(data=GOOD.replace("0.2", "0.3").encode())
    run_queued_jobs()
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    assert job.status == Job.Status.FAILED
    assert "not the one that was previewed" in job.errors[0]
    assert LabResult.objects.count() == 0 and not DataTransfer.objects.filter(dry_run=False).exists()
    assert not ImportUpload.objects.exists()  # purged all the same
    page = hema_client.get(response["Location"]).content.decode()
    assert "The import failed: nothing was imported." in page and "not the one that was previewed" in page


def test_an_expired_preview_is_refused(hema_client):
    check(hema_client, GOOD)
    stored = ImportUpload.objects.get()
    ImportUpload.objects.filter(pk=stored.pk).update(
        checked_at=stored.checked_at - PREVIEW_MAX_AGE - timedelta(seconds=1)
    )
    page = hema_client.get(reverse("patients:import-upload", args=[stored.pk])).content.decode()
    assert "This preview has expired" in page and "Confirm the import" not in page
    response = confirm(hema_client, stored=stored)
    assert response["Location"] == reverse("patients:import")
    assert not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()
    assert LabResult.objects.count() == 0


def test_a_newer_upload_replaces_the_preview_an_older_tab_confirms(hema_client):
    check(hema_client, GOOD)
    old = ImportUpload.objects.get()
    old_digest = upload_digest(old)
    check(hema_client, HEADER + "P001,2025-03-09,il6,300,pg/mL,\n")
    assert list(ImportUpload.objects.values_list("pk", flat=True)) != [old.pk]
    response = confirm(hema_client, stored=old, digest=old_digest)
    assert response["Location"] == reverse("patients:import")
    assert not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()
    assert LabResult.objects.count() == 0


def test_another_users_upload_cannot_be_seen_or_confirmed(hema_client, team):
    check(hema_client, GOOD)
    stored = ImportUpload.objects.get()
    other = Client()
    other.force_login(make_user("hema2", "hematologist", (team,)))
    assert other.get(reverse("patients:import-upload", args=[stored.pk])).status_code == 404
    response = confirm(other, stored=stored, digest=upload_digest(stored))
    assert response["Location"] == reverse("patients:import")
    assert not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()
    assert ImportUpload.objects.get().status == ImportUpload.Status.CHECKED


def test_a_file_that_is_not_utf8_is_refused_with_a_clear_message(hema_client):
    page = check(hema_client, (HEADER + "P001,2025-03-08,crp,25,mg/L,café\n").encode("latin-1"))
    html = page.content.decode()
    assert "not UTF-8 text" in html and "save it as CSV UTF-8" in html
    assert LabResult.objects.count() == 0


def test_a_wrong_header_names_the_column_and_the_expected_header(hema_client):
    page = check(hema_client, "mrn,when,analyte,value,unit,note\nP001,2025-03-08,crp,25,mg/L,\n")
    errors = page.context["report"]["errors"]
    assert ("when", 1) in {(e["column"], e["line"]) for e in errors}
    assert "required column collected_at is missing" in page.content.decode()


def test_a_file_over_the_size_limit_is_refused_by_the_form(hema_client, settings):
    settings.IMPORT_UPLOAD_MAX_BYTES = 1024 * 1024
    response = upload(hema_client, HEADER + "x" * (1024 * 1024))
    assert response.status_code == 400
    assert "at most 1 MB are accepted" in response.content.decode()
    assert DataTransfer.objects.count() == 0 and not ImportUpload.objects.exists()


def test_a_conflict_offers_the_correction_and_the_correction_needs_a_reason(hema_client, patient):
    import_file(hema_client, GOOD)
    changed = GOOD.replace("crp,25,", "crp,26,")
    conflict = check(hema_client, changed)
    assert "to change it, import again with “Correct stored values” and a reason" in conflict.content.decode()
    no_reason = upload(hema_client, changed, correct="on")
    assert no_reason.status_code == 400
    assert no_reason.context["form"].errors["reason"] == ["A correction needs a reason."]
    preview = check(hema_client, changed, correct="on", reason="lab re-issued")
    assert "with the reason: lab re-issued" in preview.content.decode()
    confirm_and_import(hema_client)
    crp = LabResult.objects.get(patient=patient, analyte="crp")
    assert crp.value == 260  # 26 mg/dL
    assert crp.history.first().history_change_reason == "corrected by import: lab re-issued"
    latest = DataTransfer.objects.filter(dry_run=False, accepted=True).first()
    assert latest.correction_reason == "lab re-issued"


def test_events_cannot_be_imported_as_corrections(hema_client):
    response = upload(
        hema_client, "mrn,date,event,detail\nP001,2025-03-20,cr,\n", kind="events", correct="on", reason="r"
    )
    assert "Events cannot be corrected by import" in response.content.decode()
    assert not ImportUpload.objects.exists()


def test_a_patient_of_another_team_is_unknown_and_the_attempt_is_logged(hema_client, clinician):
    other = CareTeam.objects.create(name="Ward 9")
    services.patient_register(
        user=clinician, mrn="Q009", name="Other", infusion_date=date(2025, 3, 1), care_team=other
    )
    page = check(hema_client, HEADER + "Q009,2025-03-08,crp,25,mg/L,\n")
    assert "no patient with MRN Q009 in your care teams" in page.content.decode()
    logged = AccessLog.objects.filter(mrn="Q009", granted=False, username="hema")
    assert list(logged.values_list("page", "ip_address")) == [("csv import (web)", "127.0.0.1")]
    assert LabResult.objects.count() == 0


def test_patients_csv_may_name_only_ones_own_care_teams(hema_client):
    CareTeam.objects.create(name="Ward 9")
    refused = check(hema_client, PATIENTS_HEADER + "N001,New,F,,Ward 9,,,2025-03-01,,\n", kind="patients")
    reasons = [e["reason"] for e in refused.context["report"]["errors"]]
    assert reasons == ["care team 'Ward 9' is not one of your care teams (Ward 7)"]
    import_file(hema_client, PATIENTS_HEADER + "N001,New,F,,Ward 7,,,2025-03-01,,\n", kind="patients")
    assert Patient.objects.get(mrn="N001").care_team.name == "Ward 7"


def test_clinicians_and_admins_are_refused_the_import_and_export_pages(hema_client, clinician, site_admin):
    check(hema_client, GOOD)
    stored = ImportUpload.objects.get()
    for user in (clinician, site_admin):
        client = Client()
        client.force_login(user)
        for name in ("patients:import", "patients:export", "patients:import-preview"):
            assert client.get(reverse(name)).status_code == 403
        assert client.get(reverse("patients:import-upload", args=[stored.pk])).status_code == 403
        assert confirm(client, stored=stored).status_code == 403
        assert upload(client, GOOD).status_code == 403
        assert client.post(reverse("patients:export")).status_code == 403
    assert not DataTransfer.objects.filter(dry_run=False).exists()
    assert ImportUpload.objects.count() == 1 and not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()


def test_the_result_of_another_users_import_is_not_found(hema_client, team):
    import_file(hema_client, GOOD)
    transfer = DataTransfer.objects.get(dry_run=False)
    job = Job.objects.get(kind=Job.Kind.IMPORT_RUN)
    other = Client()
    other.force_login(make_user("hema2", "hematologist", (team,)))
    assert other.get(reverse("patients:import-result", kwargs={"transfer": transfer.pk})).status_code == 404
    assert other.get(reverse("patients:import-job", args=[job.pk])).status_code == 404


def test_the_earlier_addresses_lead_to_the_one_import_path(hema_client):
    assert hema_client.get("/patients/files/import/large/")["Location"] == reverse("patients:import")
    nothing = hema_client.get("/patients/files/import/preview/")
    assert nothing["Location"] == reverse("patients:import")
    check(hema_client, GOOD)
    stored = ImportUpload.objects.get()
    here = reverse("patients:import-upload", args=[stored.pk])
    assert hema_client.get("/patients/files/import/preview/")["Location"] == here
    assert hema_client.get(f"/patients/files/import/large/{stored.pk}/")["Location"] == here
    # The earlier confirmation addresses import nothing: a confirmation needs the digest.
    assert hema_client.post(f"/patients/files/import/large/{stored.pk}/confirm/")["Location"] == here
    assert (
        hema_client.post("/patients/files/import/confirm/", {"digest": upload_digest(stored)}).status_code
        == 302
    )
    assert not Job.objects.filter(kind=Job.Kind.IMPORT_RUN).exists()


# --- export -------------------------------------------------------------------------------------


@pytest.fixture
def two_teams(hema_client, patient, clinician) -> Patient:
    """P001 in the hematologist's team with labs; Q009 in another team."""
    import_file(hema_client, GOOD)
    other = CareTeam.objects.create(name="Ward 9")
    return services.patient_register(
        user=clinician, mrn="Q009", name="Other", infusion_date=date(2025, 3, 1), care_team=other
    )


def download(client: Client) -> zipfile.ZipFile:
    response = client.post(reverse("patients:export"))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="crsrisk-cohort-')
    return zipfile.ZipFile(io.BytesIO(response.content))


def test_export_zip_holds_the_six_files_of_export_cohort_byte_for_byte(hema_client, two_teams, tmp_path):
    archive = download(hema_client)
    assert archive.namelist() == [f"{kind}.csv" for kind in FILE_ORDER]
    export_cohort(directory=tmp_path, patients=Patient.objects.filter(mrn="P001"))
    for kind in FILE_ORDER:
        assert archive.read(f"{kind}.csv") == (tmp_path / f"{kind}.csv").read_bytes(), kind
    assert b"P001" in archive.read("labs.csv") and DailyAssessment.objects.exists()


def test_export_leaves_out_other_teams_unless_the_account_sees_all_teams(hema_client, two_teams):
    assert b"Q009" not in download(hema_client).read("patients.csv")
    everyone = Client()
    everyone.force_login(make_user("chief", "hematologist", (), all_teams=True))
    patients_csv = download(everyone).read("patients.csv").decode()
    assert "P001" in patients_csv and "Q009" in patients_csv


def test_export_is_recorded_as_a_transfer_and_in_the_access_log(hema_client, two_teams):
    download(hema_client)
    transfer = DataTransfer.objects.get(direction="export")
    assert (transfer.username, transfer.kind, transfer.patients) == ("hema", "cohort", 1)
    assert transfer.filename.startswith("crsrisk-cohort-") and transfer.filename.endswith(".zip")
    logged = AccessLog.objects.filter(page="cohort export (web)")
    assert list(logged.values_list("mrn", "username", "ip_address")) == [("P001", "hema", "127.0.0.1")]


def test_export_page_says_how_many_patients_the_zip_holds(hema_client, two_teams):
    response = hema_client.get(reverse("patients:export"))
    assert response.context["count"] == 1
    assert "for the 1 patient(s) of your care teams" in response.content.decode()
    assert not DataTransfer.objects.filter(direction="export").exists()  # a GET exports nothing
