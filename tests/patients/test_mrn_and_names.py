"""MRNs are unique whatever their case; names refuse control and bidi characters (issue 9)."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from crsrisk.accounts.models import AccessLog
from patients import imports, services
from patients.models import CareTeam, Patient
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db
PATIENTS_HEADER = (
    "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct\n"
)


def register(mrn: str = "DEMO-0001", name: str = "Ann Lee", **kw) -> Patient:
    return services.patient_register(user=None, mrn=mrn, name=name, infusion_date=date(2025, 3, 1), **kw)


# --- MRN, case-insensitively unique ---------------------------------------------------------


def test_register_refuses_an_mrn_that_differs_only_in_case():
    register("DEMO-0001")
    with pytest.raises(ValidationError) as exc:
        register("demo-0001")
    assert "DEMO-0001" in exc.value.message_dict["mrn"][0]
    assert Patient.objects.count() == 1


def test_the_database_refuses_an_mrn_that_differs_only_in_case():
    team = CareTeam.objects.create(name="T")
    Patient.objects.create(mrn="AB-1", name="x", care_team=team)
    with pytest.raises(IntegrityError), transaction.atomic():
        Patient.objects.create(mrn="ab-1", name="y", care_team=team)


def test_csv_import_refuses_an_mrn_stored_in_another_case():
    register("DEMO-0001")
    report = imports.run_import(
        "patients", PATIENTS_HEADER + "demo-0001,Bob,M,,,,,2025-03-01,,\n", filename="patients.csv"
    )
    assert not report.ok
    assert any("DEMO-0001" in str(e) and e.column == "mrn" for e in report.errors), report.lines()
    assert Patient.objects.count() == 1


def test_csv_import_refuses_two_rows_whose_mrns_differ_only_in_case():
    text = PATIENTS_HEADER + "X-1,Bob,M,,,,,2025-03-01,,\nx-1,Bob,M,,,,,2025-03-01,,\n"
    report = imports.run_import("patients", text, filename="patients.csv")
    assert not report.ok
    assert any(e.line == 3 and e.column == "mrn" and "X-1" in e.reason for e in report.errors), report.lines()
    assert not Patient.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_lists_existing_clashes_and_stops():
    executor = MigrationExecutor(connection)
    before = [("patients", "0004_h5_datatransfer_append_only")]
    after = [("patients", "0005_h5_mrn_unique_ci")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    team = old.get_model("patients", "CareTeam").objects.create(name="T")
    OldPatient = old.get_model("patients", "Patient")
    for mrn in ("DEMO-7", "demo-7", "Z1"):
        OldPatient.objects.create(mrn=mrn, name="x", care_team=team)
    executor = MigrationExecutor(connection)
    with pytest.raises(Exception, match=r"DEMO-7.*demo-7") as exc:
        executor.migrate(after)
    assert "Z1" not in str(exc.value)
    OldPatient.objects.filter(mrn="demo-7").delete()
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor.loader.build_graph()
    assert ("patients", "0005_h5_mrn_unique_ci") in executor.loader.applied_migrations
    # Leave the schema as the other tests expect it: every later migration applied too.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Ann\u202eeL", "Ann\u2066Lee\u2069", "Ann\u200fLee", "Ann\nLee", "Ann\x00Lee", "Ann\x1bLee", "Ann\tLee"],
)
def test_register_refuses_control_and_bidi_characters_in_a_name(name):
    with pytest.raises(ValidationError) as exc:
        register(name=name)
    message = exc.value.message_dict["name"][0]
    assert "U+" in message
    assert not Patient.objects.exists()


def test_update_refuses_a_bidi_override_in_a_name():
    patient = register()
    with pytest.raises(ValidationError) as exc:
        services.patient_update(
            user=None, patient=patient, expected_version=1, reason="typo", name="Ann\u202eLee"
        )
    assert "U+202E" in exc.value.message_dict["name"][0]
    patient.refresh_from_db()
    assert patient.name == "Ann Lee"


def test_names_in_other_scripts_are_accepted():
    assert register(name="李小龙 O'Brien-Müller").name == "李小龙 O'Brien-Müller"


def test_csv_import_refuses_a_bidi_override_in_a_name():
    report = imports.run_import(
        "patients", PATIENTS_HEADER + "N1,Ann\u202eLee,F,,,,,2025-03-01,,\n", filename="patients.csv"
    )
    assert not report.ok
    assert any(e.column == "name" and "U+202E" in e.reason for e in report.errors), report.lines()


def test_register_form_shows_the_name_error_next_to_the_field(client, clinician, team):
    client.force_login(clinician)
    data = {"mrn": "N2", "name": "Ann\u202eLee", "sex": "F", "care_team": str(team.pk), "diagnosis": "B-ALL"}
    data["infusion_date"] = "2025-03-01"
    response = client.post(reverse("patients:register"), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_name_error"' in html and "U+202E" in html
    assert not Patient.objects.exists()


# --- a refused registration of an existing MRN is a refused access (finding 5) --------------


@pytest.fixture
def other_patient(other_team: CareTeam) -> Patient:
    return register("Q900", care_team=other_team)


def test_web_registration_of_an_existing_mrn_is_logged_as_refused(client, clinician, team, other_patient):
    client.force_login(clinician)
    data = {"mrn": "q900", "name": "Probe", "sex": "F", "care_team": str(team.pk), "diagnosis": "B-ALL"}
    data["infusion_date"] = "2025-03-01"
    response = client.post(reverse("patients:register"), data)
    assert response.status_code == 200
    row = AccessLog.objects.get(granted=False)
    assert (row.username, row.mrn, row.page) == ("clin", "q900", "patient registration")


def test_api_registration_of_an_existing_mrn_is_logged_as_refused(clinician, team, other_patient):
    api = token_client(clinician)
    response = api.post(
        reverse("api:patient-list"), {"mrn": "Q900", "name": "Probe", "infusion_date": "2025-03-01"}
    )
    assert response.status_code == 400
    row = AccessLog.objects.get(granted=False)
    assert (row.username, row.mrn, row.page) == ("clin", "Q900", "api:patient-list")


# --- MRN lookups in URLs, whatever the case ---------------------------------------------------


def test_the_patient_page_finds_an_mrn_typed_in_another_case_and_logs_the_stored_one(client, clinician, team):
    register("AB-12", care_team=team)
    client.force_login(clinician)
    response = client.get(reverse("patients:detail", args=["ab-12"]))
    assert response.status_code == 200
    assert "AB-12" in response.content.decode()
    assert AccessLog.objects.filter(granted=True, mrn="AB-12").exists()


def test_the_api_finds_an_mrn_in_another_case_but_not_another_teams_patient(clinician, team, other_patient):
    register("AB-12", care_team=team)
    api = token_client(clinician)
    assert api.get(reverse("api:patient-detail", args=["ab-12"])).status_code == 200
    assert api.get(reverse("api:patient-detail", args=["q900"])).status_code == 404
    assert AccessLog.objects.filter(granted=False, mrn="q900").exists()
