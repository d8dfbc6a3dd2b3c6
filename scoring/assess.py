"""Derive every result of one patient from plain inputs (pure: no Django, no clock).

This module glues the rules of ``scoring.rules`` into the per-day rows, the
per-patient summary and the alert conditions that ``scoring.services`` stores.
A from-scratch recomputation is exactly a call of :func:`assess_patient`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from scoring.rules import astct, bcell, measix, score
from scoring.rules.alerts import AlertCondition, alert_conditions
from scoring.rules.labindex import LabIndex
from scoring.rules.score import FactorResult, ModelSpec, ScoreResult
from scoring.rules.types import Event, Lab, Observation, Override, SiteParams
from scoring.rules.units import Analyte

BCELL_ANALYTE = Analyte.BCELL.value


@dataclass(frozen=True)
class PatientInputs:
    """Everything the rules read about one patient; days already computed in site time."""

    infusion_date: date
    baseline_mrd_pct: Decimal | None
    post_ld_mrd_pct: Decimal | None
    lymphodepletion_day: int | None
    labs: tuple[Lab, ...]
    observations: tuple[Observation, ...]
    overrides: tuple[Override, ...] = ()
    events: tuple[Event, ...] = ()
    baseline_mrd_comparator: str = ""  # "<" for an MRD below detection, like a censored lab
    post_ld_mrd_comparator: str = ""


@dataclass(frozen=True)
class DayRow:
    """The stored result of one patient-day (``DailyAssessment``)."""

    day: int
    date: date
    points: int
    max_points: int
    band: str
    band_final: bool
    provisional: bool
    factors: list[dict[str, Any]]
    crs_grade: int | None
    crs_computed_grade: int | None
    crs_review: bool
    crs_overridden: bool
    fever_waived: bool
    tocilizumab: bool
    corticosteroids: bool
    antipyretic: bool
    bcell_status: str
    first_regeneration_day: int | None
    m_easix: Decimal | None


@dataclass(frozen=True)
class Summary:
    """The stored per-patient summary (``PatientSummary``)."""

    day7_points: int
    day7_max_points: int
    day7_band: str
    day7_band_final: bool
    day7_complete: bool
    day7_factors: list[dict[str, Any]]
    max_crs_grade: int
    max_crs_day: int | None
    severe_crs: bool
    severe_observed_day: int | None
    severe_observed_grade: int | None
    bcell_status: str
    first_regeneration_day: int | None
    m_easix_pre_ld: Decimal | None
    m_easix_pre_ld_day: int | None
    m_easix_pre_ld_approximate: bool
    last_data_day: int
    # The running rows of the last two data days (day, points, max_points, band, band_final,
    # provisional): the ward list's running band and its trend since yesterday, read without
    # the day rows. The trend itself depends on today, so it is not stored.
    recent_days: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Assessment:
    rows: tuple[DayRow, ...]  # days rows_from…last_data_day
    summary: Summary
    alerts: tuple[AlertCondition, ...]
    day7: ScoreResult
    grades: tuple[astct.DayGrade, ...] = field(default=())
    rows_from: int = 0


RECENT_DAY_FIELDS = ("points", "max_points", "band", "band_final", "provisional")


def recent_day(row: DayRow) -> dict[str, Any]:
    """The part of a day row the ward list shows (stored in the summary)."""
    return {"day": row.day, **{name: getattr(row, name) for name in RECENT_DAY_FIELDS}}


def factor_to_dict(f: FactorResult) -> dict[str, Any]:
    """JSON-safe breakdown of one factor, for storage and display."""
    return {
        "code": f.code,
        "input": f.input,
        "label": f.label,
        "comparison": f.comparison,
        "cut": str(f.cut),
        "points_possible": f.points_possible,
        "points": f.points,
        "missing": f.missing,
        "value": None if f.value is None else str(f.value),
        "comparator": f.comparator or "",
        "day": f.day,
        "collected_at": None if f.collected_at is None else f.collected_at.isoformat(),
        "flags": list(f.flags),
    }


def last_data_day(inputs: PatientInputs) -> int:
    """The last day with a lab or an observation, at least day 0 (SPEC 8.2)."""
    days = [lab.day for lab in inputs.labs] + [obs.day for obs in inputs.observations]
    return max([0, *days])


# A running row (score and daily m-EASIX) reads the labs of its day and of the day before.
RUNNING_LOOKBACK_DAYS = 1


def lab_windows(from_day: int, lymphodepletion_day: int | None) -> tuple[tuple[int, int | None], ...]:
    """The days whose labs an assessment from ``from_day`` reads, besides every B-cell lab.

    Each window is ``(first, last)``, inclusive, ``last`` None for "and every later day";
    they are sorted and do not overlap. ``assess_patient(inputs, ..., from_day=from_day)``
    reads labs only through: the running rows from its ``rows_from`` on (labs of each row's
    day and the day before), the day-7 landmark (days 6–8), the pre-lymphodepletion
    m-EASIX (days ld−7…ld, or −14…−1 without an LD date), the B-cell status (every B-cell
    lab) and the last data day. So labs of these windows and every B-cell lab give the same
    rows from ``rows_from``, summary and alerts as all the labs, provided the last data day
    they give is at least ``from_day`` (see :func:`windowed_labs_suffice`): then ``rows_from``
    is at least ``from_day − 1``, and any lab left out lies before ``from_day − 2``, so it
    cannot be the last data day's. Any larger subset of the labs gives the same results too.
    """
    if lymphodepletion_day is not None:
        pre_ld = (lymphodepletion_day - measix.PRE_LD_WINDOW_DAYS, lymphodepletion_day)
    else:
        pre_ld = (measix.APPROX_WINDOW_FIRST_DAY, measix.APPROX_WINDOW_LAST_DAY)
    wanted: list[tuple[int, int | None]] = sorted(
        [
            (score.LANDMARK_FALLBACK_BEFORE_DAY, score.LANDMARK_FALLBACK_AFTER_DAY),
            pre_ld,
            (from_day - 1 - RUNNING_LOOKBACK_DAYS, None),
        ],
        key=lambda window: window[0],
    )
    merged: list[tuple[int, int | None]] = []
    for first, last in wanted:
        if merged:
            prev_first, prev_last = merged[-1]
            if prev_last is None or first <= prev_last + 1:
                merged[-1] = (prev_first, None if prev_last is None or last is None else max(prev_last, last))
                continue
        merged.append((first, last))
    return tuple(merged)


def in_lab_windows(lab: Lab, windows: Sequence[tuple[int, int | None]]) -> bool:
    """Whether an assessment with these :func:`lab_windows` reads ``lab`` (B-cell labs always)."""
    return lab.analyte == BCELL_ANALYTE or any(
        first <= lab.day and (last is None or lab.day <= last) for first, last in windows
    )


def windowed_labs_suffice(inputs: PatientInputs, from_day: int) -> bool:
    """Whether inputs holding the labs of :func:`lab_windows` (at least) assess as all labs do.

    They do when their last data day is at least ``from_day``; otherwise (a write removed
    the latest data, say) the last data day may lie before the windows: load every lab.
    """
    return last_data_day(inputs) >= from_day


def _hsct_day(events: Sequence[Event]) -> int | None:
    days = [e.day for e in events if e.kind == "hsct"]
    return min(days) if days else None


def assess_patient(
    inputs: PatientInputs, model: ModelSpec, params: SiteParams, *, from_day: int = 0
) -> Assessment:
    """Compute the per-day rows, the summary and the alert conditions of one patient.

    ``from_day`` limits the day rows to days from it on (and the last two data days, which
    the summary keeps): a write that can only change those days (a lab of that day) needs
    no others. The summary and alert conditions are always whole. Labs are indexed by
    analyte and day once, so the cost is linear in the number of labs and days.
    """
    last_day = last_data_day(inputs)
    days = range(0, last_day + 1)
    rows_from = max(0, min(from_day, last_day - 1))
    index = LabIndex(inputs.labs)
    first_therapy = score.first_therapy_days(inputs.observations)
    grades = astct.grade_days(inputs.observations, inputs.overrides)
    grade_by_day = {g.day: g for g in grades}
    hsct_day = _hsct_day(inputs.events)
    bcell_labs = [lab for lab in inputs.labs if lab.analyte == BCELL_ANALYTE]
    bcell_by_day = bcell.bcell_status_by_day(bcell_labs, days=days, params=params, hsct_day=hsct_day)

    rows = []
    for d in range(rows_from, last_day + 1):
        running = score.running_score(
            model,
            day=d,
            baseline_mrd_pct=inputs.baseline_mrd_pct,
            post_ld_mrd_pct=inputs.post_ld_mrd_pct,
            baseline_mrd_comparator=inputs.baseline_mrd_comparator,
            post_ld_mrd_comparator=inputs.post_ld_mrd_comparator,
            labs=index,
            observations=first_therapy,
        )
        g = grade_by_day.get(d)
        b = bcell_by_day[d]
        rows.append(
            DayRow(
                day=d,
                date=inputs.infusion_date + timedelta(days=d),
                points=running.points,
                max_points=running.max_points,
                band=running.band,
                band_final=running.band_final,
                provisional=running.provisional,
                factors=[factor_to_dict(f) for f in running.factors],
                crs_grade=None if g is None else g.grade,
                crs_computed_grade=None if g is None else g.computed_grade,
                crs_review=False if g is None else g.review,
                crs_overridden=False if g is None else g.overridden,
                fever_waived=False if g is None else g.waived,
                tocilizumab=False if g is None else g.tocilizumab,
                corticosteroids=False if g is None else g.corticosteroids,
                antipyretic=False if g is None else g.antipyretic,
                bcell_status=b.status,
                first_regeneration_day=b.first_regeneration_day,
                m_easix=measix.daily_m_easix(index, day=d).value,
            )
        )

    day7 = score.day7_score(
        model,
        baseline_mrd_pct=inputs.baseline_mrd_pct,
        post_ld_mrd_pct=inputs.post_ld_mrd_pct,
        baseline_mrd_comparator=inputs.baseline_mrd_comparator,
        post_ld_mrd_comparator=inputs.post_ld_mrd_comparator,
        labs=index,
        therapy_days=first_therapy,
    )
    max_grade = astct.max_crs_grade(grades, inputs.events, window=params.crs_outcome_window)
    severe = astct.first_severe_day(grades)
    final_bcell = bcell_by_day[last_day]
    pre_ld = measix.pre_ld_m_easix(index, lymphodepletion_day=inputs.lymphodepletion_day)
    summary = Summary(
        day7_points=day7.points,
        day7_max_points=day7.max_points,
        day7_band=day7.band,
        day7_band_final=day7.band_final,
        day7_complete=day7.complete,
        day7_factors=[factor_to_dict(f) for f in day7.factors],
        max_crs_grade=max_grade.grade,
        max_crs_day=max_grade.day,
        severe_crs=max_grade.severe,
        severe_observed_day=None if severe is None else severe[0],
        severe_observed_grade=None if severe is None else severe[1],
        bcell_status=final_bcell.status,
        first_regeneration_day=final_bcell.first_regeneration_day,
        m_easix_pre_ld=pre_ld.value,
        m_easix_pre_ld_day=pre_ld.day,
        m_easix_pre_ld_approximate=pre_ld.approximate,
        last_data_day=last_day,
        recent_days=[recent_day(r) for r in rows if r.day >= last_day - 1],
    )
    has_cr = any(e.kind == "cr" for e in inputs.events)
    conditions = alert_conditions(day7=day7, grades=grades, bcell_by_day=bcell_by_day, has_cr=has_cr)
    return Assessment(
        rows=tuple(rows),
        summary=summary,
        alerts=tuple(conditions),
        day7=day7,
        grades=tuple(grades),
        rows_from=rows_from,
    )
