"""FHIR R4 export of a patient's labs, and its round trip through the import (SPEC 8.4, issue 12)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle

from crsrisk.accounts.models import AccessLog
from patients.api.fhir import ucum_code
from patients.exports import export_cohort
from patients.models import LabResult
from scoring.rules import units
from tests.api.test_fhir import FHIR
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
EXPORT = reverse("api:patient-fhir", kwargs={"mrn": "P001"})
LABS = reverse("api:lab-list", kwargs={"mrn": "P001"})
SHANGHAI_DAY7 = "2025-03-08T07:30:00+08:00"


def record_labs(api) -> None:
    """A day-7 panel in several units, censored values, a note, a correction and a void."""
    panel = [
        {"analyte": "anc", "value": "200", "unit": "cells/µL"},
        {"analyte": "crp", "value": "25", "unit": "mg/dL", "note": "haemolysed; re-run"},
        {"analyte": "14723-1", "value": "27000", "unit": "pmol/L"},  # ferritin by its pmol/L LOINC
        {"analyte": "il6", "value": "<5", "unit": "ng/L"},
        {"analyte": "aptt", "value": ">180", "unit": "s"},
        {"analyte": "platelets", "value": "60", "unit": "10^3/uL"},
        {"analyte": "ldh", "value": "300", "unit": "U/L"},
    ]
    items = [{**item, "collected_at": SHANGHAI_DAY7, "confirm": True} for item in panel]
    items += [
        {"analyte": "bcell", "value": "<1", "unit": "/uL", "collected_at": "2025-03-15T01:30:00+08:00"},
        {"analyte": "crp", "value": "31", "collected_at": "2025-03-10T01:30:00+08:00"},
        {"analyte": "crp", "value": "12", "collected_at": "2025-03-11T09:00:00+08:00"},
    ]
    response = api.post(LABS, items)
    assert response.status_code == 201, response.json()
    crp = LabResult.objects.get(analyte="crp", value=31)
    fixed = api.patch(
        reverse("api:lab-detail", kwargs={"mrn": "P001", "pk": crp.pk}),
        {"value": "32", "version": 1, "reason": "transcription"},
    )
    assert fixed.status_code == 200, fixed.json()
    wrong = LabResult.objects.get(analyte="crp", value=12)
    void = reverse("api:lab-void", kwargs={"mrn": "P001", "pk": wrong.pk})
    assert api.post(void, {"version": 1, "reason": "wrong patient"}).status_code == 200


@pytest.fixture
def shanghai(settings):
    settings.TIME_ZONE = "Asia/Shanghai"


def observations(bundle: dict) -> dict[str, dict]:
    return {
        e["resource"]["code"]["coding"][0]["code"]: e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    }


def test_export_is_a_valid_collection_with_the_patient_and_every_live_lab(shanghai, hema_api, patient):
    record_labs(hema_api)
    response = hema_api.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    Bundle.model_validate_json(response.content)  # the FHIR model accepts it
    bundle = json.loads(response.content)
    assert bundle["type"] == "collection"
    first = bundle["entry"][0]["resource"]
    assert first["resourceType"] == "Patient"
    assert first["identifier"][0]["value"] == "P001"
    assert first["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert len(bundle["entry"]) == 1 + LabResult.objects.active().count() == 1 + 9  # the void left out

    obs = observations(bundle)
    ferritin = obs["2276-4"]  # the mass LOINC beside a µg/L value, never 14723-1
    assert "14723-1" not in obs
    assert LabResult.objects.get(analyte="ferritin").loinc == "14723-1"
    assert ferritin["valueQuantity"] == {
        "value": float(Decimal("12016.021362")),
        "unit": "µg/L",
        "system": "http://unitsofmeasure.org",
        "code": "ug/L",
    }
    assert obs["751-8"]["valueQuantity"]["value"] == 0.2 and obs["751-8"]["valueQuantity"]["code"] == "10*9/L"
    assert obs["8116-6"]["valueQuantity"] == {
        "value": 1.0,
        "comparator": "<",
        "unit": "cells/µL",
        "system": "http://unitsofmeasure.org",
        "code": "/uL",
    }
    assert obs["14979-9"]["valueQuantity"]["comparator"] == ">"
    assert obs["8116-6"]["effectiveDateTime"] == "2025-03-15T01:30:00+08:00"  # the site's offset
    assert obs["8116-6"]["subject"]["identifier"]["value"] == "P001"
    assert obs["8116-6"]["subject"]["reference"] == bundle["entry"][0]["fullUrl"]
    crps = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"].get("code", {}).get("text") == "C-reactive protein"
    ]
    assert [(c["valueQuantity"]["value"], c["status"]) for c in crps] == [
        (250.0, "final"),
        (32.0, "corrected"),
    ]
    assert crps[0]["note"] == [{"text": "haemolysed; re-run"}]
    assert {r["category"][0]["coding"][0]["code"] for r in obs.values()} == {"laboratory"}
    assert AccessLog.objects.filter(mrn="P001", page="api:patient-fhir", granted=True).count() == 1


@pytest.mark.nodb
@pytest.mark.parametrize("analyte", list(units.ANALYTES))
def test_the_ucum_code_of_every_canonical_unit_is_read_back_as_that_unit(analyte):
    spec = units.ANALYTES[analyte]
    factor = spec.unit_factor(ucum_code(spec.canonical_unit))
    assert factor.to_canonical(Decimal("12.5")) == Decimal("12.5")


def test_only_hematologists_of_the_care_team_may_export(clin_api, hema_api, patient, other_patient):
    assert clin_api.get(EXPORT).status_code == 403
    hidden = hema_api.get(reverse("api:patient-fhir", kwargs={"mrn": "Q900"}))
    assert hidden.status_code == 404
    assert AccessLog.objects.filter(mrn="Q900", page="api:patient-fhir", granted=False).count() == 1


def test_importing_the_export_into_the_same_site_changes_nothing(shanghai, hema_api, patient):
    record_labs(hema_api)
    exported = hema_api.get(EXPORT).content
    history = LabResult.history.count()
    before = list(LabResult.objects.order_by("pk").values())
    response = hema_api.generic("POST", FHIR, exported, content_type="application/fhir+json")
    assert response.status_code == 200, response.json()
    assert (response.json()["stored"], response.json()["skipped"], response.json()["entries"]) == (0, 9, 10)
    assert list(LabResult.objects.order_by("pk").values()) == before
    assert LabResult.history.count() == history


def test_the_export_reproduces_the_labs_in_an_empty_site_and_labs_csv_is_byte_identical(
    shanghai, hema_api, patient, tmp_path
):
    with transaction.atomic():  # the first site: rolled back below, leaving the patient without labs
        record_labs(hema_api)
        exported = hema_api.get(EXPORT).content
        export_cohort(directory=tmp_path / "first")
        transaction.set_rollback(True)
    assert not LabResult.objects.exists()

    response = hema_api.generic("POST", FHIR, exported, content_type="application/fhir+json")
    assert response.status_code == 201, response.json()
    assert response.json()["stored"] == 9
    export_cohort(directory=tmp_path / "second")
    for name in ("labs.csv", "assessments.csv", "summary.csv"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name
    assert LabResult.objects.get(analyte="crp", value=250).note == "haemolysed; re-run"
    assert_stored_equals_scratch(patient)
    # The second site's export is the first one's, but for the fullUrls and the time of export.
    again = json.loads(hema_api.get(EXPORT).content)
    assert observations(again).keys() == observations(json.loads(exported)).keys()
