"""The fitting cohort: one row per patient with a known outcome (SPEC 5 "Local fitting").

The day-7 inputs are chosen by the scoring rules themselves (``score.day7_score``:
earliest of day 7, else latest of day 6, else earliest of day 8), and the
outcome by the ASTCT rules (``astct.grade_days``, ``astct.max_crs_grade``), so
the fit sees exactly what the bedside score sees.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

import pandas as pd

from patients.models import Patient
from scoring.assess import PatientInputs
from scoring.fitting.engine import FitFactor, point_column
from scoring.models import ScoreModel
from scoring.rules import astct, score
from scoring.rules.score import ModelSpec
from scoring.rules.types import EVENT_DEATH
from scoring.rules.units import Analyte
from scoring.services import patient_inputs, patients_with_inputs, site_params, site_zone

# log10 scale for the skewed inputs (SPEC 5); values are floored first, near each assay's
# detection limit, so that an MRD of 0 % has a logarithm.
LOG10_FLOORS: Final = {
    score.BASELINE_MRD_INPUT: 0.001,  # % (flow MRD sensitivity about 10^-5)
    score.POST_LD_MRD_INPUT: 0.001,  # %
    Analyte.CRP.value: 0.1,  # mg/L
    Analyte.FERRITIN.value: 1.0,  # µg/L
    Analyte.IL6.value: 0.1,  # pg/mL
}

# Exclusion reason codes (worded by scoring.fitting.messages).
X_NO_INFUSION: Final = "no_infusion"
X_INPUT_MISSING: Final = "input_missing"
X_INPUT_UNDECIDED: Final = "input_undecided"
X_OBSERVATION_DAYS: Final = "observation_days_missing"
EXCLUSION_ORDER: Final = (X_NO_INFUSION, X_INPUT_MISSING, X_INPUT_UNDECIDED, X_OBSERVATION_DAYS)


@dataclass(frozen=True)
class FitCohort:
    """The analysable rows, the exclusions with their reasons, and the factors used."""

    frame: pd.DataFrame
    exclusions: list[dict[str, Any]]
    factors: tuple[FitFactor, ...]
    spec: ModelSpec  # the seven prespecified factors at the current cut-points
    considered: int
    outcome_window: int
    base_model: str
    counts: dict[str, int]


def prespecified_spec(model: ScoreModel) -> ModelSpec:
    """The paper's seven factors (SPEC 3.2) at the given model's cut-points where it has them."""
    current = {f.input: f for f in model.to_spec().factors}
    factors = []
    for f in score.PROVISIONAL_V0.factors:
        mine = current.get(f.input)
        if mine is None:
            factors.append(f)
        else:
            factors.append(replace(f, comparison=mine.comparison, cut=mine.cut, label=mine.label or f.label))
    return ModelSpec(name=f"{model.name} (fitting)", factors=tuple(factors))


def fit_factors(spec: ModelSpec) -> tuple[FitFactor, ...]:
    """The engine's view of the prespecified factors."""
    return tuple(
        FitFactor(
            code=f.code,
            input=f.input,
            label=f.label,
            comparison=f.comparison,
            cut=float(f.cut),
            log10=f.input in LOG10_FLOORS,
            log_floor=LOG10_FLOORS.get(f.input, 0.0),
        )
        for f in spec.factors
    )


def _span(days: list[int]) -> str:
    """Compact day list: 21–30, 33."""
    parts: list[str] = []
    start = prev = days[0]
    for d in [*days[1:], None]:
        if d is not None and d == prev + 1:
            prev = d
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if d is not None:
            start = prev = d
    return ", ".join(parts)


def _row(
    patient: Patient, inputs: PatientInputs, spec: ModelSpec, window: int
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, int]]:
    reasons: list[dict[str, Any]] = []
    flags = {"from_day_6_or_8": 0, "after_therapy": 0, "censored_at_bound": 0}
    day7 = score.day7_score(
        spec,
        baseline_mrd_pct=inputs.baseline_mrd_pct,
        post_ld_mrd_pct=inputs.post_ld_mrd_pct,
        labs=inputs.labs,
        therapy_days=inputs.observations,
        baseline_mrd_comparator=inputs.baseline_mrd_comparator,
        post_ld_mrd_comparator=inputs.post_ld_mrd_comparator,
    )
    row: dict[str, Any] = {"patient_id": patient.pk, "mrn": patient.mrn, "synthetic": patient.synthetic}
    by_code = {f.code: f for f in spec.factors}
    for result in day7.factors:
        if result.value is None:
            reasons.append({"code": X_INPUT_MISSING, "factor": result.code})
            continue
        decision = score.factor_decision(by_code[result.code], result.value, result.comparator)
        if decision is None:
            reasons.append(
                {
                    "code": X_INPUT_UNDECIDED,
                    "factor": result.code,
                    "value": f"{result.comparator or ''}{result.value}",
                }
            )
            continue
        # A censored value enters the continuous model at its bound (e.g. APTT >180 as 180).
        row[result.code] = float(result.value)
        row[point_column(result.code)] = int(decision)
        flags["from_day_6_or_8"] += any(
            f in result.flags for f in (score.FLAG_FROM_DAY_6, score.FLAG_FROM_DAY_8)
        )
        flags["after_therapy"] += any(
            f in result.flags for f in (score.FLAG_AFTER_TOCILIZUMAB, score.FLAG_AFTER_CORTICOSTEROIDS)
        )
        flags["censored_at_bound"] += bool(result.comparator)

    grades = astct.grade_days(inputs.observations, inputs.overrides)
    top = astct.max_crs_grade(grades, inputs.events, window=window)
    severe_days = [g.day for g in grades if 0 <= g.day <= window and g.grade >= astct.SEVERE_CRS_MIN_GRADE]
    onset: int | None = min(severe_days) if severe_days else (top.day if top.severe else None)
    deaths = sorted(e.day for e in inputs.events if e.kind == EVENT_DEATH)
    death_day = deaths[0] if deaths else None
    missing_days = astct.outcome_unobserved_days(
        (o.day for o in inputs.observations), window=window, onset_day=onset, death_day=death_day
    )
    if missing_days:
        reasons.append({"code": X_OBSERVATION_DAYS, "days": _span(missing_days), "n": len(missing_days)})
    row.update(
        {
            "severe_crs": bool(top.severe),
            "max_crs_grade": top.grade,
            "severe_onset_day": onset,
            "death_day": death_day,
            "died_in_window": death_day is not None and death_day <= window,
        }
    )
    return (None if reasons else row), reasons, flags


def exclusion_counts(
    exclusions: list[dict[str, Any]], factor_order: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """How many excluded patients have each reason (code, and factor where it has one); no MRN.

    A patient can have several reasons, so the counts can add up to more than the patients.
    """
    counts: dict[tuple[str, str], int] = {}
    for exclusion in exclusions:
        for key in {(str(r.get("code")), str(r.get("factor", ""))) for r in exclusion["reasons"]}:
            counts[key] = counts.get(key, 0) + 1

    def order(key: tuple[str, str]) -> tuple[int, int, str]:
        code, factor = key
        code_rank = EXCLUSION_ORDER.index(code) if code in EXCLUSION_ORDER else len(EXCLUSION_ORDER)
        factor_rank = factor_order.index(factor) if factor in factor_order else len(factor_order)
        return code_rank, factor_rank, code + factor

    return [
        {"code": code, **({"factor": factor} if factor else {}), "n": n}
        for (code, factor), n in sorted(counts.items(), key=lambda item: order(item[0]))
    ]


def build_cohort(*, model: ScoreModel | None = None) -> FitCohort:
    """Read every patient and return the fitting cohort with its exclusions (reads only)."""
    base = model or ScoreModel.objects.active()
    spec = prespecified_spec(base)
    params = site_params()
    window = params.crs_outcome_window
    tz = site_zone()
    ids = list(Patient.objects.order_by("mrn").values_list("pk", flat=True))
    exclusions: list[dict[str, Any]] = []
    no_infusion = Patient.objects.filter(infusion__isnull=True).order_by("mrn").values_list("mrn", flat=True)
    for mrn in no_infusion:
        exclusions.append({"mrn": mrn, "reasons": [{"code": X_NO_INFUSION}]})
    rows = []
    counts = {"from_day_6_or_8": 0, "after_therapy": 0, "censored_at_bound": 0}
    for patient in sorted(patients_with_inputs(ids), key=lambda p: p.mrn):
        row, reasons, flags = _row(patient, patient_inputs(patient, tz), spec, window)
        if row is None:
            exclusions.append({"mrn": patient.mrn, "reasons": reasons})
            continue
        rows.append(row)
        for key, value in flags.items():
            counts[key] += value
    factors = fit_factors(spec)
    columns = ["patient_id", "mrn", "synthetic"]
    for f in factors:
        columns += [f.code, point_column(f.code)]
    columns += ["severe_crs", "max_crs_grade", "severe_onset_day", "death_day", "died_in_window"]
    frame = pd.DataFrame(rows, columns=columns)
    return FitCohort(
        frame=frame,
        exclusions=exclusions,
        factors=factors,
        spec=spec,
        considered=len(ids),
        outcome_window=window,
        base_model=base.name,
        counts=counts,
    )
