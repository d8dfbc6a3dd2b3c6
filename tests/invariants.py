"""The recompute invariant of SPEC 4, shared by every write-path test."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any

from patients.models import Patient
from scoring.models import DailyAssessment, PatientSummary, ScoreModel
from scoring.services import assess_from_scratch, unresolved_alert_keys


def _norm(value: Any) -> Any:
    return Decimal(value) if isinstance(value, Decimal) else value


def assert_stored_equals_scratch(patient: Patient) -> None:
    """Stored rows, summary and unresolved alerts equal a from-scratch recomputation."""
    model = ScoreModel.objects.active()
    fresh = assess_from_scratch(patient, model)
    stored = {a.day: a for a in DailyAssessment.objects.filter(patient=patient, model=model).order_by("day")}
    assert sorted(stored) == [r.day for r in fresh.rows], "stored days differ from a recompute"
    for row in fresh.rows:
        for name, value in asdict(row).items():
            got = getattr(stored[row.day], name)
            assert _norm(got) == _norm(value), f"day {row.day} {name}: stored {got!r} != {value!r}"
    summary = PatientSummary.objects.get(patient=patient, model=model)
    for name, value in asdict(fresh.summary).items():
        got = getattr(summary, name)
        assert _norm(got) == _norm(value), f"summary {name}: stored {got!r} != {value!r}"
    assert unresolved_alert_keys(patient) == {(c.kind, c.day) for c in fresh.alerts}
