"""Patients by MRN: register, read, edit with optimistic locking (SPEC 2.1, 7, 8.4)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from patients.models import Patient
from scoring.models import DailyAssessment
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
LIST = reverse("api:patient-list")
DETAIL = reverse("api:patient-detail", kwargs={"mrn": "P001"})


def test_register_into_ones_only_team(clin_api, team):
    body = {"mrn": "N-17", "name": "<script>x</script>", "infusion_date": "2025-04-01", "sex": "F"}
    response = clin_api.post(LIST, body)
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["mrn"], data["care_team"], data["version"], data["name"]) == (
        "N-17",
        "Ward 7",
        1,
        "<script>x</script>",
    )
    patient = Patient.objects.get(mrn="N-17")
    assert DailyAssessment.objects.filter(patient=patient).exists()
    assert_stored_equals_scratch(patient)


def test_register_refuses_a_team_one_is_not_in(clin_api, other_team):
    body = {"mrn": "N-18", "name": "X", "infusion_date": "2025-04-01", "care_team": "Ward 9"}
    response = clin_api.post(LIST, body)
    assert response.status_code == 400
    assert "not one of your care teams (Ward 7)" in response.json()["errors"]["care_team"][0]
    assert not Patient.objects.filter(mrn="N-18").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mrn": "bad mrn!", "name": "X", "infusion_date": "2025-04-01"}, "mrn"),
        ({"mrn": "P002", "name": "X"}, "infusion_date"),
        (
            {"mrn": "P002", "name": "X", "infusion_date": "2025-04-01", "baseline_mrd_pct": "120"},
            "baseline_mrd_pct",
        ),
        (
            {
                "mrn": "P002",
                "name": "X",
                "infusion_date": "2025-04-01",
                "lymphodepletion_start": "2025-04-05",
            },
            "lymphodepletion_start",
        ),
        ({"mrn": "P001", "name": "X", "infusion_date": "2025-04-01"}, "mrn"),
    ],
)
def test_register_errors_name_the_field(clin_api, patient, body, field):
    response = clin_api.post(LIST, body)
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert Patient.objects.count() == 1


def test_retrieve_gives_infusion_and_version(clin_api, patient):
    data = clin_api.get(DETAIL).json()
    assert (data["infusion_date"], data["care_team"], data["version"]) == ("2025-03-01", "Ward 7", 1)


def test_update_with_version_and_reason_recomputes(clin_api, patient):
    response = clin_api.patch(DETAIL, {"baseline_mrd_pct": "12", "version": 1, "reason": "MRD reported"})
    assert response.status_code == 200, response.json()
    assert (response.json()["baseline_mrd_pct"], response.json()["version"]) == ("12.0000000000", 2)
    patient.infusion.refresh_from_db()
    assert patient.infusion.baseline_mrd_pct == Decimal(12)
    assert_stored_equals_scratch(patient)


def test_stale_version_is_409_and_nothing_changes(clin_api, patient):
    assert clin_api.patch(DETAIL, {"name": "A", "version": 1, "reason": "typo"}).status_code == 200
    response = clin_api.patch(DETAIL, {"name": "B", "version": 1, "reason": "typo"})
    assert response.status_code == 409
    body = response.json()
    assert "version 1" in body["detail"] and "version" in body["errors"]
    assert Patient.objects.get().name == "A"


def test_update_needs_version_and_reason(clin_api, patient):
    response = clin_api.patch(DETAIL, {"name": "A"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"version", "reason"}


def test_only_hematologists_change_monitoring(clin_api, hema_api, patient):
    body = {"monitoring_end_day": 60, "version": 1, "reason": "stable"}
    assert clin_api.patch(DETAIL, body).status_code == 400
    assert hema_api.patch(DETAIL, body).json()["monitoring_end_day"] == 60
