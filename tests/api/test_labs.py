"""Labs by MRN: one object or a list, all or nothing; corrections and voids (SPEC 2.2, 8.4, 9)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from patients.models import LabResult
from scoring.models import PatientSummary
from tests.api.conftest import at
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
LABS = reverse("api:lab-list", kwargs={"mrn": "P001"})


def day7_panel(**overrides):
    values = {"anc": "0.2", "crp": "250", "ferritin": "12000", "il6": "300", "aptt": "48"}
    values.update(overrides)
    return [{"analyte": a, "value": v, "collected_at": at(7)} for a, v in values.items()]


def test_one_lab_object_is_stored_in_canonical_unit(clin_api, patient):
    response = clin_api.post(
        LABS, {"analyte": "crp", "value": 2.5, "unit": "mg/dL", "collected_at": at(2)}, format="json"
    )
    assert response.status_code == 201, response.json()
    (lab,) = response.json()["stored"]
    assert (lab["analyte"], lab["value"], lab["unit"], lab["entered_unit"]) == ("crp", "25", "mg/L", "mg/dL")
    assert lab["source"] == "api" and lab["entered_by"] == "clin"
    stored = LabResult.objects.get()
    assert stored.value == Decimal(25) and stored.source == "api"
    assert_stored_equals_scratch(patient)


def test_a_list_across_collection_times_is_stored_and_scored(clin_api, patient):
    """SPEC 10, first score example: points 4, band high, complete."""
    detail = reverse("api:patient-detail", kwargs={"mrn": "P001"})
    mrd = {"baseline_mrd_pct": "12", "post_ld_mrd_pct": "3", "version": 1, "reason": "MRD reported"}
    assert clin_api.patch(detail, mrd, format="json").status_code == 200
    body = [*day7_panel(), {"analyte": "1988-5", "value": "<5", "collected_at": at(3)}]
    response = clin_api.post(LABS, body, format="json")
    assert response.status_code == 201, response.json()
    assert len(response.json()["stored"]) == 6
    assert LabResult.objects.filter(analyte="crp", comparator="<", loinc="1988-5").exists()
    summary = PatientSummary.objects.get(patient=patient)
    assert (summary.day7_points, summary.day7_band, summary.day7_complete) == (4, "high", True)
    assert_stored_equals_scratch(patient)


def test_one_bad_row_stores_nothing_and_names_its_index_and_field(clin_api, patient):
    body = day7_panel()
    body[1]["unit"] = "furlongs"
    body[3]["value"] = "12,5"
    body.append({"analyte": "30522-7", "value": "3", "collected_at": at(7)})
    response = clin_api.post(LABS, body, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"[1].unit", "[3].value", "[5].analyte"}
    assert "accepted: mg/L, mg/dL" in errors["[1].unit"][0]
    assert "decimal point" in errors["[3].value"][0]
    assert "high-sensitivity CRP" in errors["[5].analyte"][0]
    assert not LabResult.objects.exists()
    assert_stored_equals_scratch(patient)


def test_missing_fields_in_a_list_name_the_index(clin_api, patient):
    response = clin_api.post(LABS, [{"analyte": "crp", "value": "1", "collected_at": at(1)}, {"value": "x"}])
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"[1].analyte", "[1].collected_at"}
    assert not LabResult.objects.exists()


def test_a_day_outside_the_accepted_range_is_refused_with_its_field(clin_api, patient):
    response = clin_api.post(LABS, {"analyte": "crp", "value": "1", "collected_at": "2027-06-01T08:00:00Z"})
    assert response.status_code == 400
    assert "outside the accepted range" in response.json()["errors"]["collected_at"][0]


def test_out_of_range_values_are_refused(clin_api, patient):
    response = clin_api.post(LABS, {"analyte": "crp", "value": "1200", "collected_at": at(1)}, format="json")
    assert response.status_code == 400
    assert "0–1000 mg/L" in response.json()["errors"]["value"][0]


def test_unusual_value_needs_confirmation_422_then_is_stored_flagged(clin_api, patient):
    body = [
        {"analyte": "crp", "value": "20", "collected_at": at(1)},
        {"analyte": "crp", "value": "600", "collected_at": at(2)},
    ]
    response = clin_api.post(LABS, body, format="json")
    assert response.status_code == 422
    payload = response.json()
    assert set(payload["warnings"]) == {"[1].value"}
    assert any("usual range" in w for w in payload["warnings"]["[1].value"])
    assert any("10-fold" in w for w in payload["warnings"]["[1].value"])
    assert '"confirm": true' in payload["detail"]
    assert not LabResult.objects.exists()

    body[1]["confirm"] = True
    response = clin_api.post(LABS, body, format="json")
    assert response.status_code == 201
    assert "[1].value" in response.json()["warnings"]
    assert LabResult.objects.get(value=600).flags
    assert_stored_equals_scratch(patient)


def test_tenfold_jump_against_an_earlier_item_of_the_same_list(clin_api, patient):
    body = [
        {"analyte": "anc", "value": "3", "collected_at": at(1)},
        {"analyte": "anc", "value": "300", "unit": "/uL", "collected_at": at(2)},
    ]
    response = clin_api.post(LABS, body, format="json")
    assert response.status_code == 422
    assert set(response.json()["warnings"]) == {"[1].value"}
    assert not LabResult.objects.exists()


def test_resending_the_same_values_changes_nothing(clin_api, patient):
    assert clin_api.post(LABS, day7_panel(), format="json").status_code == 201
    again = clin_api.post(LABS, day7_panel(), format="json")
    assert again.status_code == 200
    assert (len(again.json()["stored"]), len(again.json()["skipped"])) == (0, 5)
    assert LabResult.objects.count() == 5


def test_a_different_value_at_a_stored_time_is_refused_pointing_to_correction(clin_api, patient):
    clin_api.post(LABS, day7_panel(), format="json")
    response = clin_api.post(LABS, day7_panel(crp="260"), format="json")
    assert response.status_code == 400
    (message,) = response.json()["errors"]["[1].value"]
    assert "already stored as 250 mg/L" in message and "correct that value" in message
    assert LabResult.objects.count() == 5


def test_two_values_for_one_time_in_one_list_are_refused(clin_api, patient):
    body = [
        {"analyte": "crp", "value": "20", "collected_at": at(1)},
        {"analyte": "crp", "value": "25", "collected_at": at(1)},
    ]
    response = clin_api.post(LABS, body, format="json")
    assert response.status_code == 400
    assert "[1].collected_at" in response.json()["errors"]


def test_get_lists_live_labs_only(clin_api, clinician, patient):
    clin_api.post(LABS, day7_panel(), format="json")
    lab = LabResult.objects.get(analyte="crp")
    void = reverse("api:lab-void", kwargs={"mrn": "P001", "pk": lab.pk})
    assert clin_api.post(void, {"version": 1, "reason": "wrong tube"}).status_code == 200
    analytes = [row["analyte"] for row in clin_api.get(LABS).json()]
    assert sorted(analytes) == ["anc", "aptt", "ferritin", "il6"]
    assert clin_api.get(LABS, {"analyte": "anc"}).json()[0]["value"] == "0.2"
    assert_stored_equals_scratch(patient)


def test_correction_with_version_and_reason_keeps_history(clin_api, patient):
    clin_api.post(LABS, day7_panel(), format="json")
    lab = LabResult.objects.get(analyte="crp")
    url = reverse("api:lab-detail", kwargs={"mrn": "P001", "pk": lab.pk})
    response = clin_api.patch(url, {"value": "25", "unit": "mg/dL", "version": 1, "reason": "unit slip"})
    assert response.status_code == 200, response.json()
    assert (response.json()["value"], response.json()["version"]) == ("250", 2)
    lab.refresh_from_db()
    assert lab.history.count() == 2
    assert lab.history.first().history_change_reason == "unit slip"
    assert_stored_equals_scratch(patient)


def test_correction_from_a_stale_version_is_409_and_changes_nothing(clin_api, patient):
    clin_api.post(LABS, day7_panel(), format="json")
    lab = LabResult.objects.get(analyte="crp")
    url = reverse("api:lab-detail", kwargs={"mrn": "P001", "pk": lab.pk})
    assert clin_api.patch(url, {"value": "240", "version": 1, "reason": "recheck"}).status_code == 200
    response = clin_api.patch(url, {"value": "230", "version": 1, "reason": "recheck"})
    assert response.status_code == 409
    assert "version 1" in response.json()["errors"]["version"][0]
    lab.refresh_from_db()
    assert (lab.value, lab.version) == (Decimal(240), 2)
    assert_stored_equals_scratch(patient)


def test_correction_needs_a_reason_and_confirmation_for_unusual_values(clin_api, patient):
    clin_api.post(LABS, day7_panel(), format="json")
    lab = LabResult.objects.get(analyte="crp")
    url = reverse("api:lab-detail", kwargs={"mrn": "P001", "pk": lab.pk})
    assert set(clin_api.patch(url, {"value": "240", "version": 1}).json()["errors"]) == {"reason"}
    response = clin_api.patch(url, {"value": "700", "version": 1, "reason": "recheck"})
    assert response.status_code == 422
    assert set(response.json()["warnings"]) == {"value"}
    ok = clin_api.patch(url, {"value": "700", "version": 1, "reason": "recheck", "confirm": True})
    assert ok.status_code == 200


def test_void_from_a_stale_version_is_409(clin_api, patient):
    clin_api.post(LABS, day7_panel(), format="json")
    lab = LabResult.objects.get(analyte="crp")
    url = reverse("api:lab-void", kwargs={"mrn": "P001", "pk": lab.pk})
    assert clin_api.post(url, {"version": 7, "reason": "x"}).status_code == 409
    assert not LabResult.objects.get(pk=lab.pk).is_voided


def test_lab_of_another_patient_is_404(clin_api, patient, other_patient, clinician):
    from patients import services

    lab = services.lab_record(
        user=clinician, patient=other_patient, analyte="crp", value="5", collected_at=at_dt(1)
    )
    url = reverse("api:lab-detail", kwargs={"mrn": "P001", "pk": lab.pk})
    assert clin_api.get(url).status_code == 404


def test_malformed_json_is_a_400_not_a_500(clin_api, patient):
    response = clin_api.generic("POST", LABS, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_empty_list_and_wrong_types_are_400(clin_api, patient):
    assert clin_api.post(LABS, [], format="json").status_code == 400
    response = clin_api.post(LABS, {"analyte": "crp", "value": True, "collected_at": at(1)}, format="json")
    assert response.status_code == 400
    assert "value" in response.json()["errors"]


def at_dt(day: int):
    from datetime import datetime

    return datetime.fromisoformat(at(day))
