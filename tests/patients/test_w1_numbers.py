"""Issue 12 items 1 and 3 against the database: files, API and forms take numbers as lab systems send them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from patients import imports
from patients.exports import export_cohort
from patients.models import Infusion, LabResult, Observation, Patient
from scoring.services import load_inputs
from tests.api.conftest import at, token_client
from tests.invariants import assert_stored_equals_scratch
from tests.web.test_entry import reg_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def clin_api(clinician):
    return token_client(clinician)


@pytest.fixture
def clin_client(client, clinician):
    client.force_login(clinician)
    return client


PATIENTS_HEADER = (
    "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct,"
    "lymphodepletion_start\n"
)
LABS_HEADER = "mrn,collected_at,analyte,value,unit,note\n"
OBS_HEADER = "mrn,date,tmax_c,hypotension,oxygen,antipyretic,tocilizumab,corticosteroids\n"


def load(kind: str, data: str) -> imports.ImportReport:
    return imports.run_import(kind, data, filename=f"{kind}.csv")


def patient_row(mrn: str, baseline: str, post_ld: str) -> str:
    return f"{mrn},A,F,2010-01-01,,B-ALL,,2025-03-01,{baseline},{post_ld},\n"


# --- item 1: numbers in files ---------------------------------------------------------------


def test_csv_labs_take_exponents_and_note_only_values_rounded_as_given(patient):
    report = load(
        "labs",
        LABS_HEADER
        + "P001,2025-03-08T06:00,ferritin,1.107e+04,µg/L,\n"
        + "P001,2025-03-08T06:00,crp,12.34567851,mg/L,\n"
        + "P001,2025-03-08T06:00,il6,2.5E+01,,\n",
    )
    assert report.ok, report.lines()
    values = dict(LabResult.objects.values_list("analyte", "value"))
    assert Decimal(values["ferritin"]) == Decimal(11070)
    assert Decimal(values["crp"]) == Decimal("12.345679")
    assert Decimal(values["il6"]) == Decimal(25)
    rounded = [n for n in report.lines() if "more decimal places than are stored" in n]
    assert rounded == [
        "labs.csv, line 3: stored: value 12.34567851 has more decimal places than are stored (6): "
        "stored rounded to 12.345679"
    ]
    assert_stored_equals_scratch(patient)


def test_a_converted_value_is_rounded_without_a_note(patient):
    # 2247 pmol/L of ferritin is 999.xxx µg/L with more than 6 places: nobody typed them.
    report = load("labs", LABS_HEADER + "P001,2025-03-08T06:00,ferritin,2247,pmol/L,\n")
    assert report.ok, report.lines()
    assert not [n for n in report.lines() if "decimal places" in n]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("NaN", "is not a number"),
        ("inf", "is not a number"),
        ("12,5", "has a comma"),
        ("1,107", "has a comma"),
    ],
)
def test_csv_labs_still_refuse_nan_infinity_and_commas(patient, value, reason):
    report = load("labs", LABS_HEADER + f'P001,2025-03-08T06:00,crp,"{value}",mg/L,\n')
    assert not report.ok
    assert reason in report.errors[0].reason
    assert not LabResult.objects.exists()


def test_tmax_takes_an_exponent_but_never_a_second_decimal(patient):
    report = load("observations", OBS_HEADER + "P001,2025-03-03,37.95,none,none,0,0,0\n")
    assert not report.ok
    assert "at most 1 decimal places" in report.errors[0].reason
    assert not Observation.objects.exists()
    report = load("observations", OBS_HEADER + "P001,2025-03-03,3.81e1,none,none,0,0,0\n")
    assert report.ok, report.lines()
    assert Observation.objects.get().tmax_c == Decimal("38.1")


# --- item 3: MRD ----------------------------------------------------------------------------


def test_csv_mrd_keeps_ngs_precision_and_notes_rounding_and_fractions():
    report = load(
        "patients",
        PATIENTS_HEADER
        + patient_row("M001", "0.0006495", "6.5E-06")
        + patient_row("M002", "1.23456789012", ""),
    )
    assert report.ok, report.lines()
    m1 = Infusion.objects.get(patient__mrn="M001")
    assert (m1.baseline_mrd_pct, m1.post_ld_mrd_pct) == (Decimal("0.0006495"), Decimal("0.0000065"))
    assert Infusion.objects.get(patient__mrn="M002").baseline_mrd_pct == Decimal("1.2345678901")
    notes = report.lines()
    assert any("line 2, column post_ld_mrd_pct: MRD 6.5E-06 % is below 0.0001 %" in n for n in notes), notes
    assert not any("line 2, column baseline_mrd_pct" in n for n in notes), notes
    assert any(
        "line 3, column baseline_mrd_pct: value 1.23456789012 has more decimal places than are stored (10)"
        in n
        for n in notes
    ), notes


def test_csv_mrd_below_detection_is_stored_with_its_comparator_and_scored_when_unambiguous():
    report = load("patients", PATIENTS_HEADER + patient_row("M001", "<0.01", "12"))
    assert report.ok, report.lines()
    inf = Infusion.objects.get()
    assert (inf.baseline_mrd_comparator, inf.baseline_mrd_pct) == ("<", Decimal("0.01"))
    assert inf.post_ld_mrd_comparator == ""
    inputs = load_inputs([inf.patient_id])[inf.patient_id]
    assert inputs.baseline_mrd_comparator == "<"
    assert_stored_equals_scratch(inf.patient)
    # Importing the same file again changes nothing; "<" against a measured value is a conflict.
    assert load("patients", PATIENTS_HEADER + patient_row("M001", "<0.01", "12")).skipped == 1
    report = load("patients", PATIENTS_HEADER + patient_row("M001", "0.01", "12"))
    assert not report.ok
    assert report.errors[0].column == "baseline_mrd_comparator"


def test_csv_mrd_refuses_out_of_range_and_commas():
    report = load("patients", PATIENTS_HEADER + patient_row("M001", "120", '"0,5"'))
    assert not report.ok
    reasons = {e.column: e.reason for e in report.errors}
    assert "from 0 to 100" in reasons["baseline_mrd_pct"]
    assert "has a comma" in reasons["post_ld_mrd_pct"]
    assert not Patient.objects.exists()


def test_export_writes_mrd_in_full_with_its_comparator_and_reads_it_back(tmp_path):
    assert load("patients", PATIENTS_HEADER + patient_row("M001", "<0.01", "0.0006495123")).ok
    first = tmp_path / "first"
    export_cohort(directory=first)
    text = (first / "patients.csv").read_text(encoding="utf-8")
    assert ",<0.01,0.0006495123," in text
    Infusion.objects.all().delete()
    Patient.objects.all().delete()
    assert load("patients", text).ok
    second = tmp_path / "second"
    export_cohort(directory=second)
    assert (second / "patients.csv").read_text(encoding="utf-8") == text


# --- the API --------------------------------------------------------------------------------


def test_api_lab_rounding_is_said_in_notes(clin_api, patient):
    url = reverse("api:lab-list", args=["P001"])
    response = clin_api.post(url, {"analyte": "crp", "value": "1.234567851e+01", "collected_at": at(7)})
    assert response.status_code == 201, response.json()
    assert response.json()["notes"] == {
        "value": [
            "value 1.234567851e+01 has more decimal places than are stored (6): stored rounded to 12.345679"
        ]
    }
    assert LabResult.objects.get().value == Decimal("12.345679")


def test_api_lab_still_refuses_nan(clin_api, patient):
    url = reverse("api:lab-list", args=["P001"])
    response = clin_api.post(url, {"analyte": "crp", "value": "NaN", "collected_at": at(7)})
    assert response.status_code == 400
    assert not LabResult.objects.exists()


def test_api_registers_mrd_below_detection_and_ngs_values_with_notes(clin_api, team):
    body = {
        "mrn": "P009",
        "name": "A. Patient",
        "infusion_date": "2025-03-01",
        "baseline_mrd_pct": "<0.01",
        "post_ld_mrd_pct": 6.5e-06,
    }
    response = clin_api.post(reverse("api:patient-list"), body, format="json")
    assert response.status_code == 201, response.json()
    out = response.json()
    assert (out["baseline_mrd_comparator"], out["baseline_mrd_pct"]) == ("<", "0.0100000000")
    assert out["post_ld_mrd_pct"] == "0.0000065000"
    assert list(out["notes"]) == ["post_ld_mrd_pct"]
    assert "is below 0.0001 %" in out["notes"]["post_ld_mrd_pct"][0]
    # A new measured value drops the comparator.
    url = reverse("api:patient-detail", args=["P009"])
    response = clin_api.patch(
        url, {"baseline_mrd_pct": "6.49512345678E-04", "version": 1, "reason": "NGS"}, format="json"
    )
    assert response.status_code == 200, response.json()
    out = response.json()
    assert (out["baseline_mrd_comparator"], out["baseline_mrd_pct"]) == ("", "0.0006495123")
    assert "more decimal places than are stored (10)" in out["notes"]["baseline_mrd_pct"][0]


def test_api_refuses_an_mrd_out_of_range_and_stores_nothing(clin_api, team):
    body = {"mrn": "P009", "name": "A", "infusion_date": "2025-03-01", "baseline_mrd_pct": "NaN"}
    response = clin_api.post(reverse("api:patient-list"), body, format="json")
    assert response.status_code == 400
    assert "is not a number" in response.json()["errors"]["baseline_mrd_pct"][0]
    assert not Patient.objects.exists()


# --- forms ----------------------------------------------------------------------------------


def test_form_takes_mrd_below_detection_and_shows_it_back_for_editing(clin_client, team):
    response = clin_client.post(reverse("patients:register"), reg_post(team, baseline_mrd_pct="<0.01"))
    assert response.status_code == 302
    inf = Infusion.objects.get()
    assert (inf.baseline_mrd_comparator, inf.baseline_mrd_pct) == ("<", Decimal("0.01"))
    html = clin_client.get(reverse("patients:edit", args=[inf.patient.mrn])).content.decode()
    assert 'value="&lt;0.01"' in html
    html = clin_client.get(reverse("patients:detail", args=[inf.patient.mrn])).content.decode()
    assert "&lt;0.01 %" in html


def test_form_keeps_refusing_exponents_for_mrd(clin_client, team):
    response = clin_client.post(reverse("patients:register"), reg_post(team, baseline_mrd_pct="6.5E-04"))
    assert response.status_code == 200
    assert "has an exponent, which is not accepted here" in response.content.decode()
    assert not Patient.objects.exists()
