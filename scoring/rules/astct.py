"""ASTCT 2019 CRS grading per day, with episodes and the fever waiver (SPEC 3.1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Final

from .days import format_day
from .messages import Message, gettext_noop, join
from .types import DEATH_CRS, EVENT_DEATH, Event, Observation, Override

GRADING_SYSTEM: Final = "ASTCT-2019"  # recorded with each result, SPEC 3.1
FEVER_C: Final = Decimal("38.0")  # fever is tmax ≥ 38.0 °C, SPEC 3.1 (Lee et al. 2019)
QUIET_DAYS_TO_CLOSE_EPISODE: Final = 2  # two quiet days in a row end an episode, SPEC 3.1
FEVER_GRADE: Final = 1  # fever alone, SPEC 3.1
DEATH_FROM_CRS_GRADE: Final = 5  # SPEC 3.1
SEVERE_CRS_MIN_GRADE: Final = 3  # severe CRS is grade ≥ 3, SPEC 0 and 3.1

# Organ-support grades, SPEC 2.3 and 3.1.
HYPOTENSION_GRADES: Final[Mapping[str, int]] = {
    "none": 0,
    "no_vasopressor": 2,
    "one_vasopressor": 3,
    "multiple_vasopressors": 4,
}
OXYGEN_GRADES: Final[Mapping[str, int]] = {
    "none": 0,
    "low_flow": 2,
    "high_flow": 3,
    "positive_pressure": 4,
}

# The reasons a day's grade gives (SPEC 3.1); the therapy names are the form's words.
HYPOTENSION_REASONS: Final[Mapping[str, str]] = {
    "no_vasopressor": gettext_noop("hypotension without vasopressor"),
    "one_vasopressor": gettext_noop("one vasopressor"),
    "multiple_vasopressors": gettext_noop("several vasopressors"),
}
OXYGEN_REASONS: Final[Mapping[str, str]] = {
    "low_flow": gettext_noop("low-flow O₂ ≤ 6 L/min"),
    "high_flow": gettext_noop("high-flow O₂ (> 6 L/min, or a mask)"),
    "positive_pressure": gettext_noop("positive-pressure ventilation (CPAP, BiPAP, intubation)"),
}
THERAPY_NAMES: Final[Mapping[str, str]] = {
    "antipyretic": gettext_noop("antipyretic"),
    "tocilizumab": gettext_noop("tocilizumab"),
    "corticosteroids": gettext_noop("corticosteroids"),
}

REVIEW_MESSAGE: Final = gettext_noop(
    "hypotension/hypoxia without fever: not graded as CRS. Check for masked fever, or another cause."
)


@dataclass(frozen=True)
class DayGrade:
    """The ASTCT grade of one day and why: fever, waiver, review flag and override."""

    day: int
    computed_grade: int
    grade: int
    fever: bool
    waived: bool
    review: bool
    review_reason: str
    overridden: bool
    episode_onset: int | None
    tocilizumab: bool
    corticosteroids: bool
    antipyretic: bool
    grading_system: str = GRADING_SYSTEM
    # Why: the fever (or the waiver and whence it comes), the organ support, the review
    # flag and the override, in that order; each a translatable message.
    reasons: tuple[Message, ...] = ()


@dataclass(frozen=True)
class MaxGrade:
    """The maximum CRS grade over the outcome window, or 5 from a death from CRS."""

    grade: int
    day: int | None
    by_death: bool
    severe: bool


def has_fever(obs: Observation) -> bool:
    """Return True when the day's tmax is recorded and ≥ 38.0 °C."""
    return obs.tmax_c is not None and obs.tmax_c >= FEVER_C


def is_quiet(obs: Observation) -> bool:
    """Return True for a day with tmax recorded below 38.0, no hypotension and no oxygen."""
    return (
        obs.tmax_c is not None and obs.tmax_c < FEVER_C and obs.hypotension == "none" and obs.oxygen == "none"
    )


def _organ_grade(obs: Observation) -> int:
    try:
        hypotension = HYPOTENSION_GRADES[obs.hypotension]
    except KeyError:
        raise ValueError(
            f"day {obs.day}: hypotension {obs.hypotension!r} is not accepted; accepted: "
            + ", ".join(HYPOTENSION_GRADES)
        ) from None
    try:
        oxygen = OXYGEN_GRADES[obs.oxygen]
    except KeyError:
        raise ValueError(
            f"day {obs.day}: oxygen {obs.oxygen!r} is not accepted; accepted: " + ", ".join(OXYGEN_GRADES)
        ) from None
    return max(hypotension, oxygen)


def _therapies(obs: Observation) -> list[Message]:
    return [Message(name) for attr, name in THERAPY_NAMES.items() if getattr(obs, attr)]


def _reasons(
    obs: Observation,
    *,
    fever: bool,
    waiver_from: Observation | None,
    review: bool,
    override: int | None,
    computed: int,
) -> tuple[Message, ...]:
    """The drivers of one day's grade, as the bedside page shows them."""
    out: list[Message] = []
    if fever:
        out.append(Message(gettext_noop("fever %(tmax)s °C"), {"tmax": str(obs.tmax_c)}))
    elif waiver_from is not None:
        out.append(
            Message(
                gettext_noop("fever carried from day %(day)s (%(therapy)s)"),
                {"day": format_day(waiver_from.day), "therapy": join(_therapies(waiver_from))},
            )
        )
    elif obs.tmax_c is None:
        out.append(Message(gettext_noop("Tmax not recorded")))
    else:
        out.append(Message(gettext_noop("no fever (Tmax %(tmax)s °C)"), {"tmax": str(obs.tmax_c)}))
    if obs.hypotension in HYPOTENSION_REASONS:
        out.append(Message(HYPOTENSION_REASONS[obs.hypotension]))
    if obs.oxygen in OXYGEN_REASONS:
        out.append(Message(OXYGEN_REASONS[obs.oxygen]))
    if review:
        out.append(Message(REVIEW_MESSAGE))
    if override is not None:
        out.append(
            Message(
                gettext_noop("grade set by hand to %(grade)s (computed %(computed)s)"),
                {"grade": override, "computed": computed},
            )
        )
    return tuple(out)


def _override_by_day(overrides: Sequence[Override]) -> dict[int, int]:
    by_day: dict[int, int] = {}
    for override in overrides:
        if override.day in by_day and by_day[override.day] != override.grade:
            raise ValueError(f"day {override.day} has two different grade overrides")
        by_day[override.day] = override.grade
    return by_day


def grade_days(observations: Sequence[Observation], overrides: Sequence[Override] = ()) -> list[DayGrade]:
    """Grade every observed day ≥ 0, in day order; overrides on unobserved days are ignored."""
    rows = sorted((o for o in observations if o.day >= 0), key=lambda o: o.day)
    for earlier, later in pairwise(rows):
        if earlier.day == later.day:
            raise ValueError(f"day {later.day} has two observation rows; one per day is allowed")
    override_by_day = _override_by_day(overrides)

    grades: list[DayGrade] = []
    onset: int | None = None  # onset of the open episode
    therapy_in_episode = False  # antipyretic or anti-cytokine therapy since onset
    first_therapy: Observation | None = None  # the day of the episode's first such therapy
    last_quiet_day: int | None = None  # the latest quiet day of the open episode
    for obs in rows:
        fever = has_fever(obs)
        override = override_by_day.get(obs.day)
        if onset is None and fever and override != 0:
            # An override to 0 on a fever day keeps it from starting an episode, SPEC 3.1.
            onset = obs.day
            therapy_in_episode = False
            first_therapy = None
            last_quiet_day = None
        episode_onset = onset
        if onset is not None:
            therapy_in_episode = therapy_in_episode or (
                obs.antipyretic or obs.tocilizumab or obs.corticosteroids
            )
            if therapy_in_episode and first_therapy is None:
                first_therapy = obs
        waiver = onset is not None and therapy_in_episode
        organ = _organ_grade(obs)

        if fever or waiver:
            computed = max(FEVER_GRADE if fever else 0, organ)
            review = False
        else:
            computed = 0
            review = organ > 0
        grade = computed if override is None else override
        grades.append(
            DayGrade(
                day=obs.day,
                computed_grade=computed,
                grade=grade,
                fever=fever,
                waived=waiver and not fever,
                review=review,
                review_reason=REVIEW_MESSAGE if review else "",
                overridden=override is not None,
                episode_onset=episode_onset,
                tocilizumab=obs.tocilizumab,
                corticosteroids=obs.corticosteroids,
                antipyretic=obs.antipyretic,
                reasons=_reasons(
                    obs,
                    fever=fever,
                    waiver_from=first_therapy if waiver else None,
                    review=review,
                    override=override,
                    computed=computed,
                ),
            )
        )

        if onset is not None:
            if is_quiet(obs):
                # The second of two quiet calendar days in a row closes the episode after it.
                if last_quiet_day is not None and last_quiet_day == obs.day - 1:
                    onset = None
                    therapy_in_episode = False
                    first_therapy = None
                    last_quiet_day = None
                else:
                    last_quiet_day = obs.day
            else:
                last_quiet_day = None
    return grades


def max_crs_grade(grades: Sequence[DayGrade], events: Sequence[Event], window: int = 30) -> MaxGrade:
    """Return the highest grade over days 0…window, or 5 when a death from CRS is recorded."""
    crs_deaths = sorted(e.day for e in events if e.kind == EVENT_DEATH and e.detail == DEATH_CRS)
    if crs_deaths:
        return MaxGrade(grade=DEATH_FROM_CRS_GRADE, day=crs_deaths[0], by_death=True, severe=True)
    in_window = sorted((g for g in grades if 0 <= g.day <= window), key=lambda g: g.day)
    if not in_window:
        return MaxGrade(grade=0, day=None, by_death=False, severe=False)
    top = max(g.grade for g in in_window)
    first_day = next(g.day for g in in_window if g.grade == top)
    return MaxGrade(grade=top, day=first_day, by_death=False, severe=top >= SEVERE_CRS_MIN_GRADE)


def first_severe_day(grades: Sequence[DayGrade]) -> tuple[int, int] | None:
    """Return (day, grade) of the first day graded ≥ 3, on any day, or None."""
    for g in sorted(grades, key=lambda g: g.day):
        if g.grade >= SEVERE_CRS_MIN_GRADE:
            return g.day, g.grade
    return None


def outcome_unobserved_days(
    observed_days: Iterable[int], *, window: int, onset_day: int | None, death_day: int | None
) -> list[int]:
    """Days without a bedside observation before the CRS outcome is known (SPEC 5, 6).

    The outcome (severe CRS or not within days 0…window) is known once every day is
    observed up to the end of the window, or up to the day severe CRS began, or up to
    death. An empty list means it is known.
    """
    end = window
    if onset_day is not None:
        end = min(end, onset_day)
    if death_day is not None:
        end = min(end, death_day)
    observed = set(observed_days)
    return [d for d in range(0, end + 1) if d not in observed]
