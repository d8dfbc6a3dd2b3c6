"""FHIR R4 Bundle import through the API and the command, all or nothing (SPEC 8.4)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from crsrisk.accounts.models import AccessLog
from patients.models import LabResult
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
FHIR = reverse("api:fhir")


def observation(
    loinc="1988-5", value=250, code="mg/L", mrn="P001", when="2025-03-08T08:00:00+00:00", **extra
):
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"identifier": {"system": "urn:oid:1.2.3", "value": mrn}},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": code, "system": "http://unitsofmeasure.org", "code": code},
    }
    resource.update(extra)
    return resource


def bundle(*resources, kind="batch"):
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"resource": r, "request": {"method": "POST", "url": "Observation"}} for r in resources],
    }


def day7_bundle():
    anc = observation("751-8", 200, "/uL")
    anc["valueQuantity"]["unit"] = "cells/µL"
    ferritin = observation("2276-4", 12000, "ug/L")
    il6 = observation("26881-3", 300, "pg/mL")
    aptt = observation("14979-9", 180, "s")
    aptt["valueQuantity"]["comparator"] = ">"
    crp = observation("1988-5", 25, "mg/dL")
    crp["subject"] = {"reference": "Patient?identifier=urn:oid:1.2.3|P001"}
    return bundle(anc, crp, ferritin, il6, aptt, kind="transaction")


def test_happy_path_stores_canonical_values_with_source_fhir(hema_api, patient):
    response = hema_api.post(FHIR, day7_bundle())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["entries"], body["stored"], body["skipped"], body["patients"]) == (5, 5, 0, ["P001"])
    labs = {lab.analyte: lab for lab in LabResult.objects.all()}
    assert labs["anc"].value == Decimal("0.2")
    assert labs["crp"].value == Decimal(250)
    assert (labs["aptt"].comparator, labs["aptt"].value) == (">", Decimal(180))
    assert {lab.source for lab in labs.values()} == {"fhir"}
    assert labs["ferritin"].loinc == "2276-4"
    assert_stored_equals_scratch(patient)


def test_fhir_json_media_type_and_resending_is_idempotent(hema_api, patient):
    data = json.dumps(day7_bundle())
    assert hema_api.generic("POST", FHIR, data, content_type="application/fhir+json").status_code == 201
    again = hema_api.generic("POST", FHIR, data, content_type="application/fhir+json")
    assert again.status_code == 200
    assert (again.json()["stored"], again.json()["skipped"]) == (0, 5)
    assert LabResult.objects.count() == 5


def test_every_bad_entry_is_listed_and_nothing_is_stored(hema_api, patient):
    bad_unit = observation(code="mmol/L")
    hs_crp = observation("30522-7", 3)
    unknown = observation("2276-4", 500, "ug/L", mrn="NOBODY")
    no_value = observation("26881-3")
    del no_value["valueQuantity"]
    server_ref = observation("2532-0", 300, "U/L")
    server_ref["subject"] = {"reference": "Patient/123"}
    response = hema_api.post(
        FHIR, bundle(observation("751-8", 1.2, "10*9/L"), bad_unit, hs_crp, unknown, no_value, server_ref)
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {
        "entry[1].resource.valueQuantity.code",
        "entry[2].resource.code",
        "entry[3].resource.subject",
        "entry[4].resource.valueQuantity",
        "entry[5].resource.subject",
    }
    assert "accepted: mg/L, mg/dL" in errors["entry[1].resource.valueQuantity.code"][0]
    assert "high-sensitivity CRP" in errors["entry[2].resource.code"][0]
    assert "No patient with MRN NOBODY in your care teams" in errors["entry[3].resource.subject"][0]
    assert not LabResult.objects.exists()
    refused = AccessLog.objects.get()
    assert (refused.mrn, refused.page, refused.granted) == ("NOBODY", "api:fhir", False)
    assert_stored_equals_scratch(patient)


def test_patient_of_another_team_is_unknown(hema_api, patient, other_patient):
    response = hema_api.post(FHIR, bundle(observation(mrn="Q900")))
    assert response.status_code == 400
    assert "No patient with MRN Q900" in response.json()["errors"]["entry[0].resource.subject"][0]
    assert not LabResult.objects.exists()


def test_structural_errors_come_from_the_fhir_model(hema_api, patient):
    broken = observation(when="2025-03-08T08:00:00")  # FHIR requires an offset with a time
    broken["valueQuantity"]["comparator"] = "~"
    response = hema_api.post(
        FHIR,
        bundle(
            broken,
            {"resourceType": "Encounter", "id": "x"},
            observation(status="cancelled"),
            {"resourceType": "Patient", "birthDate": "01/03/1990"},
        ),
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "entry[0].resource.effectiveDateTime" in errors
    assert "entry[1].resource" in errors and "Only Observation" in errors["entry[1].resource"][0]
    assert "entry[2].resource.status" in errors
    assert "entry[3].resource.birthDate" in errors  # a Patient entry is checked too


def test_a_patient_entry_is_accepted_and_not_imported(hema_api, patient):
    person = {
        "resourceType": "Patient",
        "identifier": [{"value": "P001"}],
        "name": [{"text": "Someone Else"}],
    }
    response = hema_api.post(FHIR, bundle(person, observation(), kind="collection"))
    assert response.status_code == 201, response.json()
    assert (response.json()["entries"], response.json()["stored"]) == (2, 1)
    patient.refresh_from_db()
    assert patient.name == "Test Patient"


def test_not_a_bundle(hema_api, patient):
    assert hema_api.post(FHIR, {"resourceType": "Observation"}).json()["errors"] == {
        "resourceType": ["The body must be a FHIR Bundle (resourceType Bundle)."]
    }
    response = hema_api.post(FHIR, {"resourceType": "Bundle", "type": "searchset", "entry": []})
    assert set(response.json()["errors"]) == {"type", "entry"}


def test_bare_date_means_noon_site_time_and_unusual_values_are_flagged(hema_api, patient):
    response = hema_api.post(FHIR, bundle(observation(value=600, when="2025-03-08")))
    assert response.status_code == 201
    assert "entry[0].resource.valueQuantity.value" in response.json()["warnings"]
    lab = LabResult.objects.get()
    assert lab.collected_at.isoformat() == "2025-03-08T12:00:00+00:00"
    assert lab.flags


def test_command_imports_a_file(tmp_path, patient, capsys):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(day7_bundle()), encoding="utf-8")
    call_command("import_fhir", str(path), "--dry-run")
    assert not LabResult.objects.exists()
    assert "would store 5 lab value(s)" in capsys.readouterr().err
    call_command("import_fhir", str(path))
    assert LabResult.objects.filter(source="fhir").count() == 5
    assert_stored_equals_scratch(patient)


def test_command_refuses_the_whole_file_with_a_report_on_stderr(tmp_path, patient, capsys):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle(observation(), observation("30522-7", 3))), encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("import_fhir", str(path))
    err = capsys.readouterr().err
    assert "entry[1].resource.code" in err and "high-sensitivity" in err
    assert not LabResult.objects.exists()


def test_command_refuses_unreadable_json(tmp_path, db):
    path = tmp_path / "bundle.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(CommandError, match="not JSON"):
        call_command("import_fhir", str(path))


def test_api_dry_run_stores_nothing(hema_api, patient):
    response = hema_api.post(FHIR + "?dry_run=1", day7_bundle())
    assert response.status_code == 200
    assert (response.json()["stored"], response.json()["dry_run"]) == (5, True)
    assert not LabResult.objects.exists()


def test_command_accepts_a_file_with_a_byte_order_mark(tmp_path, patient):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(day7_bundle()), encoding="utf-8-sig")
    call_command("import_fhir", str(path))
    assert LabResult.objects.filter(source="fhir").count() == 5
