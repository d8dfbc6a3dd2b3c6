"""The lab writer (patients.services.labs): a panel's checks and rows are set-based, not per analyte."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients import services
from patients.models import LabResult
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")
PANEL = [
    ("anc", "0.5"),
    ("crp", "20"),
    ("ferritin", "800"),
    ("il6", "15"),
    ("aptt", "35"),
    ("ldh", "300"),
    ("bcell", "0"),
    ("platelets", "90"),
]


def at(day: int, hour: int = 8) -> datetime:
    return datetime(2025, 3, 1 + day, hour, tzinfo=UTC)


def record(user, patient, when, pairs, **kwargs):
    return services.lab_panel_record(
        user=user,
        patient=patient,
        collected_at=when,
        entries=[services.LabEntry(code, value) for code, value in pairs],
        confirmed=kwargs.pop("confirmed", True),
        **kwargs,
    )


def queries_of(user, patient, when, pairs) -> int:
    with CaptureQueriesContext(connection) as ctx:
        record(user, patient, when, pairs)
    return len(ctx.captured_queries)


def test_a_panel_costs_the_same_queries_whatever_its_number_of_analytes(clinician, patient):
    for day in (1, 2, 3):
        record(clinician, patient, at(day), PANEL)
    two = queries_of(clinician, patient, at(4), PANEL[:2])
    eight = queries_of(clinician, patient, at(5), PANEL)
    # Per analyte, the writer used to query the previous value, look for a duplicate, and
    # insert the row and its history one by one: six more analytes cost 24 more queries.
    assert eight - two <= 2, (two, eight)
    assert LabResult.objects.filter(patient=patient).count() == 3 * 8 + 2 + 8
    rows = LabResult.objects.filter(patient=patient, collected_at=at(5))
    assert {r.history.count() for r in rows} == {1}
    assert {r.history.first().history_change_reason for r in rows} == {"entered"}
    assert_stored_equals_scratch(patient)


def test_the_tenfold_warning_compares_with_the_latest_value_before_the_collection_time(clinician, patient):
    record(clinician, patient, at(3), [("crp", "10"), ("ferritin", "500")])
    record(clinician, patient, at(5), [("crp", "150"), ("ferritin", "600")])
    # Day 4 lies between them: its previous CRP is day 3's 10 (a ten-fold jump to 100),
    # not day 5's 150; ferritin 550 against day 3's 500 is no jump.
    with pytest.raises(services.NeedsConfirmation) as caught:
        record(clinician, patient, at(4), [("crp", "100"), ("ferritin", "550")], confirmed=False)
    assert set(caught.value.warnings) == {"crp"}
    assert not LabResult.objects.filter(patient=patient, collected_at=at(4)).exists()


def test_a_value_already_recorded_at_the_time_is_refused_by_analyte(clinician, patient):
    record(clinician, patient, at(3), [("crp", "10")])
    with pytest.raises(ValidationError) as caught:
        record(clinician, patient, at(3), [("crp", "12"), ("ferritin", "500")])
    assert set(caught.value.message_dict) == {"crp"}
    assert "already recorded at this collection time" in caught.value.message_dict["crp"][0]
    assert LabResult.objects.filter(patient=patient).count() == 1


def test_one_query_finds_the_previous_values_and_the_duplicates(clinician, patient):
    """A censored value at the time is a duplicate; a value at the time is not the previous one."""
    record(clinician, patient, at(2), [("crp", "10"), ("anc", "1.5")])
    record(clinician, patient, at(3), [("crp", "<5"), ("ferritin", "500")])  # censored: not a previous
    record(clinician, patient, at(4), [("ferritin", "520")])
    record(clinician, patient, at(6), [("crp", "900")])  # after the time: not a previous
    voided = record(clinician, patient, at(5), [("il6", "40")])[0]
    services.lab_void(user=clinician, lab=voided, expected_version=voided.version, reason="wrong patient")
    with CaptureQueriesContext(connection) as ctx:
        previous, recorded = services.labs.previous_and_recorded(
            patient, ["crp", "anc", "ferritin", "il6", "aptt"], at(4)
        )
    assert len(ctx.captured_queries) == 1
    assert previous == {"crp": 10, "anc": Decimal("1.5"), "ferritin": 500}
    assert recorded == {"ferritin"}
    _previous, recorded = services.labs.previous_and_recorded(patient, ["crp", "il6"], at(3))
    assert recorded == {"crp"}
    _previous, recorded = services.labs.previous_and_recorded(patient, ["il6"], at(5))
    assert recorded == set()  # the voided value does not count
