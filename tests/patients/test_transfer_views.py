"""Import and export pages (SPEC 8.1, 8.2, 7): preview, confirm, refusals, scope, audit."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crsrisk.accounts.models import AccessLog
from patients import services
from patients.exports import FILE_ORDER, export_cohort
from patients.forms import IMPORT_MAX_BYTES
from patients.models import CareTeam, DataTransfer, LabResult, Patient
from patients.transfer_views import PENDING_KEY, PREVIEW_MAX_AGE
from scoring.models import DailyAssessment
from tests.conftest import make_user
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


def confirm(client: Client, digest: str | None = None):
    if digest is None:
        digest = client.session[PENDING_KEY]["digest"]
    return client.post(reverse("patients:import-confirm"), {"digest": digest})


@pytest.fixture
def hema_client(hematologist: User, patient: Patient) -> Client:
    client = Client()
    client.force_login(hematologist)
    return client


def test_upload_with_a_bad_row_lists_its_line_and_column_and_stores_nothing(hema_client):
    response = upload(hema_client, BAD)
    assert response.status_code == 200
    errors = response.context["report"].errors
    assert [(e.line, e.column, e.value) for e in errors] == [(3, "value", "0,2")]
    html = response.content.decode()
    assert "has a comma" in html and "<td>3</td>" in html and "<code>value</code>" in html
    assert LabResult.objects.count() == 0
    assert PENDING_KEY not in hema_client.session
    transfer = DataTransfer.objects.get()
    assert (transfer.dry_run, transfer.accepted, transfer.rows_refused) == (True, False, 1)
    # The user's choices are kept on the re-shown form.
    assert response.context["form"]["kind"].value() == "labs"


def test_valid_upload_previews_the_counts_and_stores_nothing(hema_client):
    response = upload(hema_client, GOOD)
    assert response.status_code == 302 and response["Location"] == reverse("patients:import-preview")
    preview = hema_client.get(response["Location"])
    assert preview.status_code == 200
    assert preview.context["preview"]["created"] == 2
    assert "Rows to create" in preview.content.decode()
    assert LabResult.objects.count() == 0
    assert DataTransfer.objects.get().dry_run is True


def test_confirm_imports_the_previewed_file_once_and_shows_the_summary(hema_client, patient):
    upload(hema_client, GOOD)
    response = confirm(hema_client)
    transfer = DataTransfer.objects.filter(dry_run=False).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("patients:import-result", kwargs={"transfer": transfer.pk})
    assert LabResult.objects.filter(patient=patient).count() == 2
    summary = (transfer.accepted, transfer.rows_created, transfer.patients, transfer.username)
    assert summary == (True, 2, 1, "hema")
    assert_stored_equals_scratch(patient)
    result = hema_client.get(response["Location"])
    html = result.content.decode()
    assert "labs.csv was imported." in html and "Rows created" in html
    assert PENDING_KEY not in hema_client.session
    # The preview is single-use: a second confirmation imports nothing more.
    again = hema_client.post(reverse("patients:import-confirm"), {"digest": transfer.pk})
    assert again["Location"] == reverse("patients:import")
    assert DataTransfer.objects.filter(dry_run=False).count() == 1


def test_a_file_that_conflicts_by_confirmation_time_is_refused_and_the_result_says_so(
    hema_client, patient, hematologist
):
    upload(hema_client, GOOD)
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
    response = confirm(hema_client)
    transfer = DataTransfer.objects.get(dry_run=False)
    assert (transfer.accepted, transfer.rows_created) == (False, 0)
    assert LabResult.objects.filter(patient=patient).count() == 1  # the one entered meanwhile
    html = hema_client.get(response["Location"]).content.decode()
    assert "was refused on confirmation" in html and "conflict: crp of P001" in html


def test_the_result_page_does_not_show_a_dry_run_as_an_import(hema_client):
    upload(hema_client, GOOD)
    dry_run = DataTransfer.objects.get(dry_run=True)
    url = reverse("patients:import-result", kwargs={"transfer": dry_run.pk})
    assert hema_client.get(url).status_code == 404


def test_a_tampered_digest_is_refused_and_stores_nothing(hema_client):
    upload(hema_client, GOOD)
    response = confirm(hema_client, digest="0" * 64)
    assert response.status_code == 302 and response["Location"] == reverse("patients:import")
    assert LabResult.objects.count() == 0
    page = hema_client.get(response["Location"])
    assert "no longer valid" in page.content.decode()


def test_a_non_ascii_digest_is_refused_without_an_error(hema_client):
    upload(hema_client, GOOD)
    response = confirm(hema_client, digest="é" * 64)
    assert response.status_code == 302 and response["Location"] == reverse("patients:import")
    assert LabResult.objects.count() == 0


def test_tampered_session_content_does_not_match_the_previewed_digest(hema_client):
    upload(hema_client, GOOD)
    session = hema_client.session
    pending = session[PENDING_KEY]
    digest = pending["digest"]
    pending["text"] = pending["text"].replace("0.2", "0.3")
    session[PENDING_KEY] = pending
    session.save()
    confirm(hema_client, digest=digest)
    assert LabResult.objects.count() == 0


def test_an_expired_preview_is_refused(hema_client):
    upload(hema_client, GOOD)
    session = hema_client.session
    pending = session[PENDING_KEY]
    pending["created"] = (timezone.now() - PREVIEW_MAX_AGE - timedelta(seconds=1)).isoformat()
    session[PENDING_KEY] = pending
    session.save()
    response = confirm(hema_client, digest=pending["digest"])
    assert response["Location"] == reverse("patients:import")
    assert LabResult.objects.count() == 0


def test_a_newer_upload_replaces_the_preview_an_older_tab_confirms(hema_client):
    upload(hema_client, GOOD)
    old_digest = hema_client.session[PENDING_KEY]["digest"]
    upload(hema_client, HEADER + "P001,2025-03-09,il6,300,pg/mL,\n")
    confirm(hema_client, digest=old_digest)
    assert LabResult.objects.count() == 0


def test_a_file_that_is_not_utf8_is_refused_with_a_clear_message(hema_client):
    response = upload(hema_client, (HEADER + "P001,2025-03-08,crp,25,mg/L,café\n").encode("latin-1"))
    html = response.content.decode()
    assert "not UTF-8 text" in html and "save it as CSV UTF-8" in html
    assert LabResult.objects.count() == 0


def test_a_wrong_header_names_the_column_and_the_expected_header(hema_client):
    response = upload(hema_client, "mrn,when,analyte,value,unit,note\nP001,2025-03-08,crp,25,mg/L,\n")
    errors = response.context["report"].errors
    assert ("when", 1) in {(e.column, e.line) for e in errors}
    assert "required column collected_at is missing" in response.content.decode()


def test_a_file_over_the_size_limit_is_refused_by_the_form(hema_client):
    response = upload(hema_client, HEADER + "x" * IMPORT_MAX_BYTES)
    assert response.status_code == 200
    assert "at most 5 MB" in response.content.decode()
    assert DataTransfer.objects.count() == 0


def test_a_conflict_offers_the_correction_and_the_correction_needs_a_reason(hema_client, patient):
    upload(hema_client, GOOD)
    confirm(hema_client)
    changed = GOOD.replace("crp,25,", "crp,26,")
    conflict = upload(hema_client, changed)
    assert "to change it, import again with “Correct stored values” and a reason" in conflict.content.decode()
    no_reason = upload(hema_client, changed, correct="on")
    assert no_reason.context["form"].errors["reason"] == ["A correction needs a reason."]
    assert upload(hema_client, changed, correct="on", reason="lab re-issued").status_code == 302
    confirm(hema_client)
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


def test_a_patient_of_another_team_is_unknown_and_the_attempt_is_logged(hema_client, clinician):
    other = CareTeam.objects.create(name="Ward 9")
    services.patient_register(
        user=clinician, mrn="Q009", name="Other", infusion_date=date(2025, 3, 1), care_team=other
    )
    response = upload(hema_client, HEADER + "Q009,2025-03-08,crp,25,mg/L,\n")
    assert "no patient with MRN Q009 in your care teams" in response.content.decode()
    assert AccessLog.objects.filter(mrn="Q009", granted=False, username="hema").exists()
    assert LabResult.objects.count() == 0


def test_patients_csv_may_name_only_ones_own_care_teams(hema_client):
    CareTeam.objects.create(name="Ward 9")
    refused = upload(hema_client, PATIENTS_HEADER + "N001,New,F,,Ward 9,,,2025-03-01,,\n", kind="patients")
    reasons = [e.reason for e in refused.context["report"].errors]
    assert reasons == ["care team 'Ward 9' is not one of your care teams (Ward 7)"]
    accepted = upload(hema_client, PATIENTS_HEADER + "N001,New,F,,Ward 7,,,2025-03-01,,\n", kind="patients")
    assert accepted.status_code == 302
    confirm(hema_client)
    assert Patient.objects.get(mrn="N001").care_team.name == "Ward 7"


def test_clinicians_and_admins_are_refused_the_import_and_export_pages(clinician, site_admin):
    for user in (clinician, site_admin):
        client = Client()
        client.force_login(user)
        for name in ("patients:import", "patients:export", "patients:import-preview"):
            assert client.get(reverse(name)).status_code == 403
        assert upload(client, GOOD).status_code == 403
        assert client.post(reverse("patients:export")).status_code == 403
    assert DataTransfer.objects.count() == 0


def test_the_result_of_another_users_import_is_not_found(hema_client, team):
    upload(hema_client, GOOD)
    confirm(hema_client)
    transfer = DataTransfer.objects.get(dry_run=False)
    other = Client()
    other.force_login(make_user("hema2", "hematologist", (team,)))
    assert other.get(reverse("patients:import-result", kwargs={"transfer": transfer.pk})).status_code == 404


# --- export -------------------------------------------------------------------------------------


@pytest.fixture
def two_teams(hema_client, patient, clinician) -> Patient:
    """P001 in the hematologist's team with labs; Q009 in another team."""
    upload(hema_client, GOOD)
    confirm(hema_client)
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
