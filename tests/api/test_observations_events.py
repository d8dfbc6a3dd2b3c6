"""Observations per day, events and grade overrides (SPEC 2.3, 2.4, 3.1, 8.4)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from patients.models import ClinicalEvent, GradeOverride, Observation
from scoring.models import DailyAssessment
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
OBS = reverse("api:observation-list", kwargs={"mrn": "P001"})
DAY2 = reverse("api:observation-detail", kwargs={"mrn": "P001", "day": "2025-03-03"})
EVENTS = reverse("api:event-list", kwargs={"mrn": "P001"})
OVERRIDES = reverse("api:override-list", kwargs={"mrn": "P001"})


def grade(patient, day):
    return DailyAssessment.objects.get(patient=patient, day=day).crs_grade


def test_put_records_a_day_and_grades_it(clin_api, patient):
    body = {"tmax_c": "38.4", "hypotension": "one_vasopressor", "oxygen": "low_flow"}
    response = clin_api.put(DAY2, body)
    assert response.status_code == 201, response.json()
    assert (response.json()["date"], response.json()["version"]) == ("2025-03-03", 1)
    assert grade(patient, 2) == 3  # SPEC 10: tmax 38.4, one vasopressor, low flow
    assert_stored_equals_scratch(patient)


def test_post_with_date_in_body(clin_api, patient):
    response = clin_api.post(OBS, {"date": "2025-03-02", "tmax_c": 38.4})
    assert response.status_code == 201
    assert grade(patient, 1) == 1
    assert clin_api.post(OBS, {"tmax_c": 38.4}).json()["errors"] == {
        "date": ["The date of the observation is required."]
    }


def test_changing_a_day_needs_version_and_reason(clin_api, patient):
    clin_api.put(DAY2, {"tmax_c": "38.4"})
    no_version = clin_api.put(DAY2, {"tmax_c": "39.0"})
    assert no_version.status_code == 400
    assert "version 1" in no_version.json()["errors"]["version"][0]
    no_reason = clin_api.put(DAY2, {"tmax_c": "39.0", "version": 1})
    assert set(no_reason.json()["errors"]) == {"reason"}
    ok = clin_api.put(DAY2, {"tmax_c": "39.0", "version": 1, "reason": "charted late"})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = clin_api.put(DAY2, {"tmax_c": "37.0", "version": 1, "reason": "again"})
    assert stale.status_code == 409
    assert Observation.objects.get().tmax_c == 39
    assert_stored_equals_scratch(patient)


def test_bad_observation_values_name_the_field(clin_api, patient):
    response = clin_api.put(DAY2, {"tmax_c": "48", "oxygen": "tent"})
    assert response.status_code == 400
    assert "oxygen" in response.json()["errors"]
    response = clin_api.put(DAY2, {"tmax_c": "48"})
    assert "30.0–45.0" in response.json()["errors"]["tmax_c"][0]
    assert not Observation.objects.exists()


@pytest.mark.parametrize(
    ("tmax", "says"),
    [
        ("38.55", ["38.55", "one decimal", "38.5"]),
        (38.55, ["38.55", "one decimal"]),
        ("hot", ["'hot'", "number in °C", "30.0–45.0"]),
        ("1234567.5", ["1234567.5", "30.0–45.0"]),
        (True, ["number in °C", "30.0–45.0"]),
        ("NaN", ["30.0–45.0"]),
    ],
)
def test_a_slipped_tmax_is_refused_with_what_is_accepted(clin_api, patient, tmax, says):
    """The API says what the ward form says: the value, what is wrong and what is accepted."""
    before = list(DailyAssessment.objects.filter(patient=patient).values().order_by("day"))
    response = clin_api.put(DAY2, {"tmax_c": tmax}, format="json")
    assert response.status_code == 400
    message = response.json()["errors"]["tmax_c"][0]
    assert all(s in message for s in says), message
    assert not Observation.objects.exists()
    assert list(DailyAssessment.objects.filter(patient=patient).values().order_by("day")) == before


def test_void_an_observation(clin_api, patient):
    clin_api.put(DAY2, {"tmax_c": "38.4"})
    url = reverse("api:observation-void", kwargs={"mrn": "P001", "day": "2025-03-03"})
    assert clin_api.post(url, {"version": 1}).status_code == 400
    assert clin_api.post(url, {"version": 1, "reason": "wrong patient"}).status_code == 200
    assert clin_api.get(OBS).json() == []
    assert clin_api.get(DAY2).status_code == 404
    assert_stored_equals_scratch(patient)


def test_impossible_date_in_path_is_404(clin_api, patient):
    assert clin_api.get("/api/v1/patients/P001/observations/2025-02-30/").status_code == 404


def test_hematologist_records_and_voids_events(hema_api, clin_api, patient):
    response = hema_api.post(EVENTS, {"kind": "death", "date": "2025-03-10"})
    assert response.status_code == 400
    assert "crs or other" in response.json()["errors"]["detail"][0]
    response = hema_api.post(EVENTS, {"kind": "cr", "date": "2025-03-29"})
    assert response.status_code == 201
    event = response.json()
    assert [e["kind"] for e in clin_api.get(EVENTS).json()] == ["cr"]  # clinicians read
    url = reverse("api:event-void", kwargs={"mrn": "P001", "pk": event["id"]})
    assert clin_api.post(url, {"version": 1, "reason": "x"}).status_code == 403
    assert hema_api.post(url, {"version": 1, "reason": "entered twice"}).status_code == 200
    assert ClinicalEvent.objects.get().is_voided
    assert_stored_equals_scratch(patient)


def test_the_api_records_an_event_once_and_in_an_order_that_can_happen(hema_api, patient):
    assert hema_api.post(EVENTS, {"kind": "cr", "date": "2025-03-29"}).status_code == 201
    again = hema_api.post(EVENTS, {"kind": "cr", "date": "2025-03-29"})
    assert again.status_code == 400
    assert "Already recorded: complete remission on 2025-03-29" in again.json()["errors"]["date"][0]
    second = hema_api.post(EVENTS, {"kind": "cr", "date": "2025-04-20"})
    assert second.status_code == 400 and "relapse" in second.json()["errors"]["date"][0]
    assert (
        hema_api.post(EVENTS, {"kind": "death", "date": "2025-04-01", "detail": "other"}).status_code == 201
    )
    late = hema_api.post(EVENTS, {"kind": "relapse", "date": "2025-04-02"})
    assert late.status_code == 400 and "2025-04-01" in late.json()["errors"]["date"][0]
    assert ClinicalEvent.objects.count() == 2


def test_hematologist_overrides_a_grade(hema_api, clin_api, patient):
    clin_api.put(DAY2, {"tmax_c": "38.9"})
    response = hema_api.post(OVERRIDES, {"date": "2025-03-03", "grade": 0, "reason": "documented infection"})
    assert response.status_code == 201, response.json()
    assert grade(patient, 2) == 0
    assert_stored_equals_scratch(patient)
    url = reverse("api:override-void", kwargs={"mrn": "P001", "pk": response.json()["id"]})
    assert hema_api.post(url, {"reason": "infection ruled out"}).status_code == 200
    assert grade(patient, 2) == 1
    assert not GradeOverride.objects.active().exists()
    assert_stored_equals_scratch(patient)
