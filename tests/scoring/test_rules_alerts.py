"""Tests of scoring.rules.alerts: alert conditions and reminders (SPEC 3.5, 3.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from scoring.rules.alerts import (
    BCELL_EARLY,
    BCELL_SUSPECTED,
    CRS_REVIEW,
    DAY7_HIGH,
    REMINDER_BCELL_OVERDUE,
    REMINDER_DAY7_PANEL,
    REMINDER_OBSERVATION_MISSING,
    SEVERE_CRS,
    AlertCondition,
    Reminder,
    alert_conditions,
    reminders,
)
from scoring.rules.astct import REVIEW_MESSAGE, grade_days
from scoring.rules.bcell import EARLY_REGENERATION_EVIDENCE, BcellResult, bcell_status_by_day
from scoring.rules.score import PROVISIONAL_V0, ScoreResult, day7_score
from scoring.rules.types import Lab, Observation, Override, SiteParams

D = Decimal
INFUSION = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def lab(analyte: str, day: int, value: str) -> Lab:
    return Lab(analyte, day, INFUSION + timedelta(days=day), D(value))


def day7(baseline: str, values: dict[str, str]) -> ScoreResult:
    labs = [lab(a, 7, v) for a, v in values.items()]
    return day7_score(PROVISIONAL_V0, baseline_mrd_pct=D(baseline), post_ld_mrd_pct=D("10"), labs=labs)


HIGH = {"anc": "0.2", "crp": "250", "ferritin": "12000", "il6": "100", "aptt": "30"}
LOW = {"anc": "2", "crp": "20", "ferritin": "500", "il6": "10", "aptt": "30"}


def keys(conditions: list[AlertCondition]) -> list[tuple[str, int]]:
    return [c.key for c in conditions]


def test_day7_high_band_raises_an_alert_keyed_on_day_7() -> None:
    conditions = alert_conditions(day7=day7("12", HIGH), grades=[], bcell_by_day={}, has_cr=False)
    assert keys(conditions) == [(DAY7_HIGH, 7)]
    assert "not a validated trigger" in str(conditions[0].message)


def test_day7_intermediate_band_and_missing_day7_raise_no_alert() -> None:
    assert alert_conditions(day7=day7("1", LOW), grades=[], bcell_by_day={}, has_cr=False) == []
    assert alert_conditions(day7=None, grades=[], bcell_by_day={}, has_cr=False) == []


def test_each_severe_day_and_each_review_day_is_a_condition() -> None:
    grades = grade_days(
        [
            Observation(1, D("37.0"), hypotension="no_vasopressor"),
            Observation(3, D("38.5"), hypotension="one_vasopressor"),
            Observation(4, D("38.5"), oxygen="positive_pressure"),
            Observation(5, D("38.5")),
        ],
        [Override(5, 3)],
    )
    conditions = alert_conditions(day7=None, grades=grades, bcell_by_day={}, has_cr=False)
    assert keys(conditions) == [(CRS_REVIEW, 1), (SEVERE_CRS, 3), (SEVERE_CRS, 4), (SEVERE_CRS, 5)]
    assert REVIEW_MESSAGE in str(conditions[0].message)
    assert "grade 4 on day +4" in str(conditions[2].message)


def bcell_days(rows: list[tuple[int, str]], confirm: bool) -> dict[int, BcellResult]:
    labs = [lab("bcell", d, v) for d, v in rows]
    return bcell_status_by_day(labs, days=range(0, 91), params=SiteParams(confirm_regeneration=confirm))


def test_suspected_regeneration_is_keyed_on_the_suspected_sample_day() -> None:
    by_day = bcell_days([(7, "0"), (35, "4")], confirm=True)
    conditions = alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=False)
    assert keys(conditions) == [(BCELL_SUSPECTED, 35)]
    assert "repeat sample" in str(conditions[0].message)


def test_a_confirmed_regeneration_without_cr_keeps_the_suspected_alert() -> None:
    # Confirmed on day 42, but no CR is recorded: no early-regeneration alert replaces it.
    by_day = bcell_days([(7, "0"), (35, "4"), (42, "6")], confirm=True)
    conditions = alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=False)
    assert keys(conditions) == [(BCELL_SUSPECTED, 35)]


def test_a_confirmed_late_regeneration_keeps_the_suspected_alert() -> None:
    by_day = bcell_days([(7, "0"), (50, "4"), (57, "6")], confirm=True)
    conditions = alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=True)
    assert keys(conditions) == [(BCELL_SUSPECTED, 50)]


def test_the_early_regeneration_alert_replaces_the_suspected_one() -> None:
    by_day = bcell_days([(7, "0"), (35, "4"), (42, "6")], confirm=True)
    conditions = alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=True)
    assert keys(conditions) == [(BCELL_EARLY, 35)]


def test_a_suspicion_refuted_by_a_return_to_aplasia_resolves() -> None:
    by_day = bcell_days([(7, "0"), (35, "4"), (42, "0")], confirm=True)
    assert alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=False) == []
    # A new suspicion after the return to aplasia raises its own alert.
    by_day = bcell_days([(7, "0"), (35, "4"), (42, "0"), (60, "5")], confirm=True)
    conditions = alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=False)
    assert keys(conditions) == [(BCELL_SUSPECTED, 60)]


@pytest.mark.parametrize("confirm", [True, False])
def test_early_regeneration_alert_needs_a_recorded_cr(confirm: bool) -> None:
    by_day = bcell_days([(7, "0"), (35, "4"), (42, "6")], confirm=confirm)
    with_cr = alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=True)
    assert (BCELL_EARLY, 35) in keys(with_cr)
    early = next(c for c in with_cr if c.kind == BCELL_EARLY)
    assert EARLY_REGENERATION_EVIDENCE in str(early.message)
    without_cr = alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=False)
    assert BCELL_EARLY not in [c.kind for c in without_cr]


def test_late_regeneration_raises_no_early_alert() -> None:
    by_day = bcell_days([(7, "0"), (50, "4")], confirm=False)
    assert alert_conditions(day7=None, grades=[], bcell_by_day=by_day, has_cr=True) == []


def test_alert_messages_are_evidence_not_orders() -> None:
    grades = grade_days([Observation(3, D("38.5"), hypotension="one_vasopressor")])
    by_day = bcell_days([(7, "0"), (35, "4"), (42, "6")], confirm=True)
    conditions = alert_conditions(day7=day7("12", HIGH), grades=grades, bcell_by_day=by_day, has_cr=True)
    for condition in conditions:
        assert "give " not in str(condition.message).casefold()
        assert "start " not in str(condition.message).casefold()


# Reminders.


def kinds(due: list[Reminder]) -> list[str]:
    return [r.kind for r in due]


@pytest.mark.parametrize(("today", "due"), [(8, False), (9, True), (200, True)])
def test_day7_panel_reminder_after_day_8_when_a_lab_is_missing(today: int, due: bool) -> None:
    partial = day7("1", {"crp": "20", "anc": "2"})
    result = reminders(today_day=today, day7=partial, bcell_days=list(range(200)), observation_days=[today])
    assert (REMINDER_DAY7_PANEL in kinds(result)) is due
    if due:
        assert "Ferritin, IL-6, APTT" in str(result[0].message)


def test_no_day7_panel_reminder_when_only_mrd_is_missing() -> None:
    labs = [lab(a, 7, v) for a, v in LOW.items()]
    score = day7_score(PROVISIONAL_V0, baseline_mrd_pct=None, post_ld_mrd_pct=None, labs=labs)
    assert reminders(today_day=9, day7=score, bcell_days=[9], observation_days=[9]) == []


@pytest.mark.parametrize(
    ("today", "bcell", "due"),
    [
        (6, [], False),
        (7, [], True),
        (20, [13], False),
        (20, [12], True),
        (90, [], True),
        (91, [], False),
    ],
)
def test_bcell_overdue_between_day_7_and_90_with_none_in_last_8_days(
    today: int, bcell: list[int], due: bool
) -> None:
    result = reminders(today_day=today, day7=day7("1", LOW), bcell_days=bcell, observation_days=[today])
    assert (REMINDER_BCELL_OVERDUE in kinds(result)) is due


@pytest.mark.parametrize(
    ("today", "observed", "due"),
    [(0, [], True), (21, [20], True), (21, [21], False), (22, [], False), (-1, [], False)],
)
def test_observation_reminder_for_days_0_to_21(today: int, observed: list[int], due: bool) -> None:
    result = reminders(today_day=today, day7=None, bcell_days=[today], observation_days=observed)
    assert (REMINDER_OBSERVATION_MISSING in kinds(result)) is due
