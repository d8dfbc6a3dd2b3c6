"""Issue 8 through the API, FHIR and CSV: lab systems get notes, never questions (SPEC 8.5)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from patients import imports, services
from patients.models import LabResult, Patient, SiteParameters
from tests.api.conftest import at
from tests.api.test_fhir import FHIR, bundle, observation
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db


def labs_url(mrn: str = "P001") -> str:
    return reverse("api:lab-list", args=[mrn])


# --- units: a note, never a question --------------------------------------------------------


def test_api_stores_a_first_crp_in_mg_dl_with_a_note(clin_api, patient):
    response = clin_api.post(
        labs_url(), {"analyte": "crp", "value": "25", "unit": "mg/dL", "collected_at": at(7)}
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["notes"] == {
        "value": ["CRP 25 mg/dL is 250 mg/L: it was given in mg/dL, not in the usual mg/L"]
    }
    assert body["warnings"] == {}
    assert LabResult.objects.get().value == Decimal(250)
    assert_stored_equals_scratch(patient)


def test_api_notes_are_keyed_by_item_and_factor_one_units_get_none(clin_api, patient):
    items = [
        {"analyte": "ferritin", "value": "800", "unit": "ng/mL", "collected_at": at(7)},
        {"analyte": "anc", "value": "200", "unit": "cells/µL", "collected_at": at(7)},
    ]
    response = clin_api.post(labs_url(), items)
    assert response.status_code == 201, response.json()
    assert response.json()["notes"] == {
        "[1].value": ["ANC 200 cells/µL is 0.2 10^9/L: it was given in cells/µL, not in the usual 10^9/L"]
    }


def test_api_unusual_values_keep_their_422_and_the_note_comes_on_the_stored_answer(clin_api, patient):
    item = {"analyte": "crp", "value": "60", "unit": "mg/dL", "collected_at": at(7)}  # 600 mg/L
    response = clin_api.post(labs_url(), item)
    assert response.status_code == 422
    assert "outside the usual range" in str(response.json()["warnings"])
    assert "mg/dL is 600" not in str(response.json())  # the unit itself is never asked about
    response = clin_api.post(labs_url(), {**item, "confirm": True})
    assert response.status_code == 201
    assert response.json()["notes"]["value"] == [
        "CRP 60 mg/dL is 600 mg/L: it was given in mg/dL, not in the usual mg/L"
    ]


def test_api_correction_in_another_unit_is_stored_with_a_note(clin_api, clinician, patient):
    lab = services.lab_record(
        user=clinician, patient=patient, analyte="crp", value="20", collected_at=at_dt(7)
    )
    url = reverse("api:lab-detail", args=["P001", lab.pk])
    response = clin_api.patch(
        url, {"value": "3", "unit": "mg/dL", "version": lab.version, "reason": "re-issued"}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["notes"] == [
        "CRP 3 mg/dL is 30 mg/L: it was given in mg/dL, not in the usual mg/L"
    ]
    assert response.json()["value"] == "30"


def test_fhir_stores_a_unit_other_than_the_usual_one_with_a_note(hema_api, patient):
    response = hema_api.post(FHIR, bundle(observation(value=25, code="mg/dL")))
    assert response.status_code == 201, response.json()
    assert response.json()["notes"] == {
        "entry[0].resource.valueQuantity.value": [
            "CRP 25 mg/dL is 250 mg/L: it was given in mg/dL, not in the usual mg/L"
        ]
    }
    assert LabResult.objects.get().value == Decimal(250)


def test_csv_stores_a_unit_other_than_the_usual_one_with_a_note(patient):
    data = "mrn,collected_at,analyte,value,unit,note\nP001,2025-03-08T06:30:00+00:00,crp,25,mg/dL,\n"
    report = imports.run_import("labs", data, filename="labs.csv")
    assert report.ok, report.lines()
    assert any("line 2: stored: CRP 25 mg/dL is 250 mg/L" in note for note in report.notes)
    assert LabResult.objects.get().value == Decimal(250)


def test_the_usual_unit_decides_what_lab_systems_are_told(hematologist, clin_api, patient):
    params = SiteParameters.load()
    services.site_parameters_update(
        user=hematologist, expected_version=params.version, reason="mg/dL ward", usual_units={"crp": "mg/dL"}
    )
    response = clin_api.post(
        labs_url(), {"analyte": "crp", "value": "25", "unit": "mg/dL", "collected_at": at(7)}
    )
    assert response.status_code == 201
    assert response.json()["notes"] == {}


# --- numbers: lab systems may send exponents (issue 12), one argument per caller --------------


def test_api_takes_an_exponent_as_lab_systems_write_it(clin_api, patient):
    response = clin_api.post(labs_url(), {"analyte": "ferritin", "value": "1.1e4", "collected_at": at(7)})
    assert response.status_code == 201, response.json()
    assert LabResult.objects.get().value == Decimal(11000)


def test_the_lab_writers_take_exponents_when_their_caller_allows_them(clinician, patient):
    # The switch another engineer flips for files and the API: one argument.
    lab = services.lab_record(
        user=clinician,
        patient=patient,
        analyte="ferritin",
        value="1.1e4",
        collected_at=at_dt(7),
        source="api",
        allow_exponent=True,
    )
    assert lab.value == Decimal(11000)


def test_csv_mrd_is_read_by_the_lab_rules(db):
    header = (
        "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct\n"
    )
    report = imports.run_import(
        "patients", header + 'C001,A,F,2010-01-01,,B-ALL,,2025-03-01,12,"0,5"\n', filename="patients.csv"
    )
    assert not report.ok
    assert "has a comma: use a decimal point" in report.errors[0].reason
    assert not Patient.objects.exists()


# --- dates ---------------------------------------------------------------------------------


def patient_body(**extra):
    return {"mrn": "N001", "name": "New", "infusion_date": "2025-03-01", **extra}


def test_api_refuses_a_birth_date_in_the_future(clin_api, team):
    today = timezone.localdate()
    body = patient_body(
        birth_date=(today + timedelta(days=5)).isoformat(),
        infusion_date=(today + timedelta(days=9)).isoformat(),
    )
    response = clin_api.post(reverse("api:patient-list"), body)
    assert response.status_code == 400
    assert "is in the future" in str(response.json()), response.json()
    assert not Patient.objects.exists()


def test_api_implausible_age_answers_422_until_confirmed(clin_api, team):
    response = clin_api.post(reverse("api:patient-list"), patient_body(birth_date="1920-02-01"))
    assert response.status_code == 422
    assert "105 years old at infusion" in str(response.json()["warnings"])
    assert not Patient.objects.exists()
    response = clin_api.post(reverse("api:patient-list"), patient_body(birth_date="1920-02-01", confirm=True))
    assert response.status_code == 201
    assert Patient.objects.get().birth_date == date(1920, 2, 1)


def test_csv_implausible_age_is_stored_with_a_note_and_a_future_birth_is_refused(db):
    header = (
        "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct\n"
    )
    report = imports.run_import(
        "patients", header + "C001,A,F,1920-01-01,,B-ALL,,2025-03-01,,\n", filename="p.csv"
    )
    assert report.ok, report.lines()
    assert any("line 2: stored: Born 1920-01-01, the patient is 105 years old" in n for n in report.notes)
    future = (timezone.localdate() + timedelta(days=3)).isoformat()
    report = imports.run_import(
        "patients", header + f"C002,B,F,{future},,B-ALL,,2025-03-01,,\n", filename="p.csv"
    )
    assert not report.ok
    assert report.errors[0].column == "birth_date"
    assert Patient.objects.count() == 1


def at_dt(day: int):
    from datetime import UTC, datetime

    return datetime(2025, 3, 1 + day, 8, tzinfo=UTC)
