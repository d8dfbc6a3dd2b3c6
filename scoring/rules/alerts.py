"""Alert conditions (stored by the caller) and date-dependent reminders (SPEC 3.5, 3.6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from .astct import REVIEW_MESSAGE, SEVERE_CRS_MIN_GRADE, DayGrade
from .bcell import APLASIA, EARLY, EARLY_REGENERATION_EVIDENCE, REGENERATION_SUSPECTED, BcellResult
from .days import format_day
from .messages import Message, gettext_noop, join
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


AlertParams = Mapping[str, "str | int"]


def alert_message(kind: str, day: int, params: AlertParams) -> Message:
    """The text of an alert, rebuilt from its kind, day and stored parameters."""
    shown_day = format_day(day)
    if kind == DAY7_HIGH:
        return Message(
            gettext_noop(
                "Day-7 score %(points)s points (up to %(max_points)s), band high, model %(model)s. "
                "The band is not a validated trigger for tocilizumab or corticosteroids."
            ),
            dict(params),
        )
    if kind == SEVERE_CRS:
        template = (
            gettext_noop("Severe CRS observed: ASTCT grade %(grade)s on day %(day)s (grade set by hand).")
            if params.get("overridden")
            else gettext_noop("Severe CRS observed: ASTCT grade %(grade)s on day %(day)s.")
        )
        return Message(template, {"grade": params["grade"], "day": shown_day})
    if kind == CRS_REVIEW:
        return Message(
            gettext_noop("Day %(day)s: %(review)s"), {"day": shown_day, "review": Message(REVIEW_MESSAGE)}
        )
    if kind == BCELL_SUSPECTED:
        return Message(
            gettext_noop(
                "Detectable CD19+ B cells on day %(day)s after aplasia: B-cell regeneration suspected. "
                "A repeat sample would confirm or refute it."
            ),
            {"day": shown_day},
        )
    if kind == BCELL_EARLY:
        return Message(
            gettext_noop("Early B-cell regeneration from day %(day)s in a patient in CR. %(evidence)s"),
            {"day": shown_day, "evidence": Message(EARLY_REGENERATION_EVIDENCE)},
        )
    raise ValueError(f"alert kind {kind!r} is not known; known: {', '.join(ALERT_KINDS)}")


@dataclass(frozen=True)
class AlertCondition:
    """A condition that should hold an alert; keyed by (kind, day).

    ``params`` are plain values, stored with the alert so that its text can be shown
    in the reader's language (``alert_message``).
    """

    kind: str
    day: int
    params: AlertParams = field(default_factory=dict, hash=False)

    @property
    def key(self) -> tuple[str, int]:
        """Return the (kind, day) key that deduplicates alerts of one patient."""
        return (self.kind, self.day)

    @property
    def message(self) -> Message:
        """The alert's text (``str()`` gives English)."""
        return alert_message(self.kind, self.day, self.params)


@dataclass(frozen=True)
class Reminder:
    """A date-dependent nudge, computed when a page is read."""

    kind: str
    message: Message


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
                {"points": day7.points, "max_points": day7.max_points, "model": day7.model},
            )
        )
    for g in grades:
        if g.grade >= SEVERE_CRS_MIN_GRADE:
            add(AlertCondition(SEVERE_CRS, g.day, {"grade": g.grade, "overridden": int(g.overridden)}))
        if g.review:
            add(AlertCondition(CRS_REVIEW, g.day))
    # A suspicion holds its alert until the status returns to aplasia (refuted), or until the
    # early-regeneration alert replaces it; a regeneration confirmed without that alert (no CR,
    # or late) keeps it, so a confirmed regeneration is never left without an alert.
    suspected: set[int] = set()
    early: set[int] = set()
    for day in sorted(bcell_by_day):
        result = bcell_by_day[day]
        if result.status == APLASIA:
            suspected.clear()
        elif result.status == REGENERATION_SUSPECTED and result.suspected_day is not None:
            suspected.add(result.suspected_day)
        elif has_cr and result.status == EARLY and result.first_regeneration_day is not None:
            early.add(result.first_regeneration_day)
    if early:
        suspected.clear()
    for day in sorted(suspected):
        add(AlertCondition(BCELL_SUSPECTED, day))
    for day in sorted(early):
        add(AlertCondition(BCELL_EARLY, day))
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
            due.append(
                Reminder(REMINDER_DAY7_PANEL, Message(gettext_noop("Day-7 panel incomplete: no day-7 labs.")))
            )
        else:
            missing = [
                Message(ANALYTES[f.input].label) if f.input in ANALYTES else Message(f.code)
                for f in day7.factors
                if f.missing and f.input not in MRD_INPUTS
            ]
            if missing:
                due.append(
                    Reminder(
                        REMINDER_DAY7_PANEL,
                        Message(
                            gettext_noop("Day-7 panel incomplete: missing %(labs)s."), {"labs": join(missing)}
                        ),
                    )
                )
    if BCELL_REMIND_FIRST_DAY <= today_day <= BCELL_REMIND_LAST_DAY:
        since = today_day - BCELL_OVERDUE_AFTER_DAYS + 1
        if not any(since <= d <= today_day for d in bcell_days):
            due.append(
                Reminder(
                    REMINDER_BCELL_OVERDUE,
                    Message(
                        gettext_noop("B-cell count overdue: none in the last %(n)s days."),
                        {"n": BCELL_OVERDUE_AFTER_DAYS},
                    ),
                )
            )
    if (
        OBSERVATION_REMIND_FIRST_DAY <= today_day <= OBSERVATION_REMIND_LAST_DAY
        and today_day not in observation_days
    ):
        due.append(
            Reminder(
                REMINDER_OBSERVATION_MISSING,
                Message(
                    gettext_noop("No bedside observation entered today (day %(day)s)."),
                    {"day": format_day(today_day)},
                ),
            )
        )
    return due
