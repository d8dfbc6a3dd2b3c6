"""Alert conditions (stored by the caller) and date-dependent reminders (SPEC 3.5, 3.6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .astct import REVIEW_MESSAGE, SEVERE_CRS_MIN_GRADE, DayGrade
from .bcell import EARLY, EARLY_REGENERATION_EVIDENCE, REGENERATION_SUSPECTED, BcellResult
from .days import format_day
from .score import BAND_HIGH, LANDMARK_DAY, MRD_INPUTS, ScoreResult
from .units import ANALYTES

DAY7_HIGH: Final = "day7_high"
SEVERE_CRS: Final = "severe_crs"
CRS_REVIEW: Final = "crs_review"
BCELL_SUSPECTED: Final = "bcell_regeneration_suspected"
BCELL_EARLY: Final = "bcell_early_regeneration"
ALERT_KINDS: Final = (DAY7_HIGH, SEVERE_CRS, CRS_REVIEW, BCELL_SUSPECTED, BCELL_EARLY)

REMINDER_DAY7_PANEL: Final = "day7_panel_incomplete"
REMINDER_BCELL_OVERDUE: Final = "bcell_overdue"
REMINDER_OBSERVATION_MISSING: Final = "observation_missing"

DAY7_PANEL_REMIND_AFTER_DAY: Final = 8  # day 8 is the last fallback day, SPEC 3.2 and 3.5
BCELL_REMIND_FIRST_DAY: Final = 7  # SPEC 3.5
BCELL_REMIND_LAST_DAY: Final = 90  # SPEC 3.5
BCELL_OVERDUE_AFTER_DAYS: Final = 8  # none in the last 8 days (today and 7 before), SPEC 3.5
OBSERVATION_REMIND_FIRST_DAY: Final = 0  # SPEC 3.5
OBSERVATION_REMIND_LAST_DAY: Final = 21  # SPEC 3.5


@dataclass(frozen=True)
class AlertCondition:
    """A condition that should hold an alert; keyed by (kind, day)."""

    kind: str
    day: int
    message: str

    @property
    def key(self) -> tuple[str, int]:
        """Return the (kind, day) key that deduplicates alerts of one patient."""
        return (self.kind, self.day)


@dataclass(frozen=True)
class Reminder:
    """A date-dependent nudge, computed when a page is read."""

    kind: str
    message: str


def alert_conditions(
    *,
    day7: ScoreResult | None,
    grades: Sequence[DayGrade],
    bcell_by_day: Mapping[int, BcellResult],
    has_cr: bool,
) -> list[AlertCondition]:
    """Derive the patient's alert conditions, sorted by day then kind, one per key."""
    found: dict[tuple[str, int], AlertCondition] = {}

    def add(condition: AlertCondition) -> None:
        found.setdefault(condition.key, condition)

    if day7 is not None and day7.band == BAND_HIGH:
        add(
            AlertCondition(
                DAY7_HIGH,
                LANDMARK_DAY,
                f"Day-7 score {day7.points} points (up to {day7.max_points}), band high, "
                f"model {day7.model}. The band is not a validated trigger for tocilizumab "
                "or corticosteroids.",
            )
        )
    for g in grades:
        if g.grade >= SEVERE_CRS_MIN_GRADE:
            add(
                AlertCondition(
                    SEVERE_CRS,
                    g.day,
                    f"Severe CRS observed: ASTCT grade {g.grade} on day {format_day(g.day)}"
                    + (" (grade set by hand)." if g.overridden else "."),
                )
            )
        if g.review:
            add(AlertCondition(CRS_REVIEW, g.day, f"Day {format_day(g.day)}: {REVIEW_MESSAGE}"))
    for result in bcell_by_day.values():
        if result.status == REGENERATION_SUSPECTED and result.suspected_day is not None:
            d = result.suspected_day
            add(
                AlertCondition(
                    BCELL_SUSPECTED,
                    d,
                    f"Detectable CD19+ B cells on day {format_day(d)} after aplasia: "
                    "B-cell regeneration suspected. A repeat sample would confirm or refute it.",
                )
            )
        if has_cr and result.status == EARLY and result.first_regeneration_day is not None:
            r = result.first_regeneration_day
            add(
                AlertCondition(
                    BCELL_EARLY,
                    r,
                    f"Early B-cell regeneration from day {format_day(r)} in a patient in CR. "
                    + EARLY_REGENERATION_EVIDENCE,
                )
            )
    return sorted(found.values(), key=lambda c: (c.day, ALERT_KINDS.index(c.kind)))


def reminders(
    *,
    today_day: int,
    day7: ScoreResult | None,
    bcell_days: Sequence[int],
    observation_days: Sequence[int],
) -> list[Reminder]:
    """Return the reminders due on `today_day` (the caller's explicit today)."""
    due: list[Reminder] = []
    if today_day > DAY7_PANEL_REMIND_AFTER_DAY:
        if day7 is None:
            due.append(Reminder(REMINDER_DAY7_PANEL, "Day-7 panel incomplete: no day-7 labs."))
        else:
            missing = [
                ANALYTES[f.input].label if f.input in ANALYTES else f.code
                for f in day7.factors
                if f.missing and f.input not in MRD_INPUTS
            ]
            if missing:
                due.append(
                    Reminder(
                        REMINDER_DAY7_PANEL,
                        "Day-7 panel incomplete: missing " + ", ".join(missing) + ".",
                    )
                )
    if BCELL_REMIND_FIRST_DAY <= today_day <= BCELL_REMIND_LAST_DAY:
        since = today_day - BCELL_OVERDUE_AFTER_DAYS + 1
        if not any(since <= d <= today_day for d in bcell_days):
            due.append(
                Reminder(
                    REMINDER_BCELL_OVERDUE,
                    f"B-cell count overdue: none in the last {BCELL_OVERDUE_AFTER_DAYS} days.",
                )
            )
    if (
        OBSERVATION_REMIND_FIRST_DAY <= today_day <= OBSERVATION_REMIND_LAST_DAY
        and today_day not in observation_days
    ):
        due.append(
            Reminder(
                REMINDER_OBSERVATION_MISSING,
                f"No bedside observation entered today (day {format_day(today_day)}).",
            )
        )
    return due
