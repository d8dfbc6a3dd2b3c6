"""SQL-looking input is stored and searched as plain text (SPEC 9)."""

from __future__ import annotations

from datetime import date

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from crsrisk.accounts.models import SecurityEvent
from patients import services
from patients.models import CareTeam, Patient

SQL = "Robert'); DROP TABLE patients_patient;--"


def test_patient_name_with_sql_is_stored_as_text(clinician: User, team: CareTeam) -> None:
    patient = services.patient_register(
        user=clinician, mrn="S001", name=SQL, infusion_date=date(2025, 3, 1), care_team=team
    )
    assert Patient.objects.get(pk=patient.pk).name == SQL
    assert Patient.objects.count() == 1


def test_sql_in_the_ward_search_is_harmless(client: Client, clinician: User, patient: Patient) -> None:
    client.force_login(clinician)
    for q in (SQL, "' OR '1'='1", "%' OR 1=1 --"):
        response = client.get(reverse("patients:ward"), {"q": q})
        assert response.status_code == 200
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_sql_in_the_audit_filters_is_harmless(client: Client, site_admin: User, db: None) -> None:
    SecurityEvent.objects.create(kind="login", username="clin")
    client.force_login(site_admin)
    response = client.get(reverse("accounts:security-audit"), {"username": "' OR '1'='1"})
    assert response.status_code == 200
    assert len(response.context["events"]) == 0  # no match, not "every row"
    response = client.get(reverse("accounts:security-audit"), {"mrn": SQL})
    assert response.status_code == 200  # too long for an MRN: an error, not every row
    assert response.context["events"] is None and response.context["accesses"] is None
    assert "at most 32 characters" in response.content.decode()


def test_sql_in_the_login_form_is_harmless(client: Client, clinician: User) -> None:
    response = client.post(reverse("accounts:login"), {"username": "clin' --", "password": "' OR '1'='1"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert SecurityEvent.objects.filter(kind="login_failed", username="clin' --").exists()


def test_sql_in_an_imported_patients_csv_is_stored_as_text(tmp_path, clinician: User, team: CareTeam) -> None:
    from django.core.management import call_command

    csv = tmp_path / "patients.csv"
    csv.write_text(
        "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct\n"
        f'S002,"{SQL}",F,1990-01-01,Ward 7,"B-ALL\'; DELETE FROM patients_patient;--",x,2025-03-01,,\n',
        encoding="utf-8",
    )
    call_command("import_patients", str(csv))
    patient = Patient.objects.get(mrn="S002")
    assert patient.name == SQL
    assert patient.diagnosis.startswith("B-ALL'; DELETE")
