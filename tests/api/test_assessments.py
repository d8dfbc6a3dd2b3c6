"""Assessments: the stored trajectory and summary of the active model (SPEC 3, 8.4)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from scoring.models import DailyAssessment, PatientSummary
from tests.api.conftest import at

pytestmark = pytest.mark.django_db
ASSESSMENTS = reverse("api:assessment-list", kwargs={"mrn": "P001"})
SUMMARY = reverse("api:summary", kwargs={"mrn": "P001"})


@pytest.fixture
def scored(clin_api, patient):
    detail = reverse("api:patient-detail", kwargs={"mrn": "P001"})
    clin_api.patch(detail, {"baseline_mrd_pct": "20", "post_ld_mrd_pct": "10", "version": 1, "reason": "MRD"})
    labs = reverse("api:lab-list", kwargs={"mrn": "P001"})
    assert clin_api.post(labs, {"analyte": "crp", "value": "30", "collected_at": at(7)}).status_code == 201
    clin_api.put(
        reverse("api:observation-detail", kwargs={"mrn": "P001", "day": "2025-03-04"}),
        {"tmax_c": "38.4", "hypotension": "one_vasopressor"},
    )
    return patient


def test_trajectory_matches_stored_rows_of_the_active_model(clin_api, scored):
    body = clin_api.get(ASSESSMENTS).json()
    assert body["model"]["name"] == "provisional-v0"
    assert "validated on day 7 only" in body["note"]
    stored = DailyAssessment.objects.filter(patient=scored).order_by("day")
    assert [r["day"] for r in body["rows"]] == [a.day for a in stored] == list(range(8))
    for row, a in zip(body["rows"], stored, strict=True):
        assert (row["points"], row["max_points"], row["band"], row["crs_grade"]) == (
            a.points,
            a.max_points,
            a.band,
            a.crs_grade,
        )
    assert body["rows"][3]["crs_grade"] == 3


def test_summary_is_the_stored_summary(clin_api, scored):
    body = clin_api.get(SUMMARY).json()
    summary = PatientSummary.objects.get(patient=scored)
    # SPEC 10: MRD 20 % and 10 %, only CRP 30 on day 7 -> 2 points, max 6, intermediate, not final.
    assert (body["day7_points"], body["day7_max_points"], body["day7_band"], body["day7_band_final"]) == (
        2,
        6,
        "intermediate",
        False,
    )
    assert body["day7_points"] == summary.day7_points
    assert (body["max_crs_grade"], body["severe_crs"]) == (3, True)
    assert body["model"]["name"] == "provisional-v0" and body["model"]["provenance"] == "provisional"
