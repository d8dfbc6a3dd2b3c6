"""Severe-CRS risk score: the day-7 landmark score and the running trend (SPEC 3.2, 5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, cast

from .labindex import LabIndex, lab_index
from .messages import Message, RuleError, gettext_noop
from .types import COMPARATORS, Lab, Observation
from .units import Analyte

FactorComparison = Literal[">=", ">", "<", "<="]

BASELINE_MRD_INPUT: Final = "baseline_mrd_pct"  # from the infusion record, SPEC 2.1
POST_LD_MRD_INPUT: Final = "post_ld_mrd_pct"  # from the infusion record, SPEC 2.1
MRD_INPUTS: Final = (BASELINE_MRD_INPUT, POST_LD_MRD_INPUT)

LANDMARK_DAY: Final = 7  # the model predicts from day 7, SPEC 3.2 (Ke et al. 2025)
LANDMARK_FALLBACK_BEFORE_DAY: Final = 6  # latest of day 6 when day 7 has none, SPEC 3.2
LANDMARK_FALLBACK_AFTER_DAY: Final = 8  # then the earliest of day 8, SPEC 3.2

# provisional-v0 cut-points: project conventions, not the published weights, SPEC 3.2.
BASELINE_MRD_CUT_PCT: Final = Decimal("5")  # high marrow burden (Park et al., NEJM 2018)
POST_LD_MRD_CUT_PCT: Final = Decimal("5")  # same convention, after lymphodepletion
ANC_CUT_10E9_L: Final = Decimal("0.5")  # CTCAE grade-4 neutropenia; point when < cut
CRP_CUT_MG_L: Final = Decimal("200")  # CRP ≥ 20 mg/dL (Davila et al., Sci Transl Med 2014)
FERRITIN_CUT_UG_L: Final = Decimal("10000")  # CARTOX HLH criterion (Neelapu et al. 2018)
IL6_CUT_PG_ML: Final = Decimal("500")  # no agreed threshold; project convention
APTT_CUT_S: Final = Decimal("55.5")  # 1.5 × a typical upper reference limit of 37 s

INTERMEDIATE_FROM_POINTS: Final = 2  # bands low 0–1, intermediate 2–3, high 4–7, SPEC 3.2
HIGH_FROM_POINTS: Final = 4

BAND_LOW: Final = "low"
BAND_INTERMEDIATE: Final = "intermediate"
BAND_HIGH: Final = "high"

# Factor flags explaining where a value came from.
FLAG_FROM_DAY_6: Final = "from_day_6"
FLAG_FROM_DAY_8: Final = "from_day_8"
FLAG_AFTER_TOCILIZUMAB: Final = "after_tocilizumab"
FLAG_AFTER_CORTICOSTEROIDS: Final = "after_corticosteroids"
FLAG_CENSORED_UNDECIDED: Final = "censored_undecided"

THERAPY_TOCILIZUMAB: Final = "tocilizumab"
THERAPY_CORTICOSTEROIDS: Final = "corticosteroids"

MODEL_CAVEAT_PROVISIONAL: Final = gettext_noop(
    "Model provisional-v0: its cut-points are clinical conventions chosen by this project, "
    "each with its source. They are not the published weights or cut-points of Ke et al. 2025, "
    "which are not available. The high band is not a validated trigger for tocilizumab or "
    "corticosteroids."
)
TREND_CAVEAT: Final = gettext_noop("trend: the model is validated on day 7 only")

_COMPARISONS: Final = (">=", ">", "<", "<=")


class ModelSpecError(RuleError):
    """A model definition the rules refuse; ``field`` and ``factor`` say where (for forms)."""

    def __init__(self, message: Message, *, field: str, factor: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.factor = factor


@dataclass(frozen=True)
class FactorSpec:
    """One factor of a score model: its input, comparison, cut-point and points."""

    code: str
    input: str
    comparison: FactorComparison
    cut: Decimal
    points: int
    label: str = ""
    rationale: str = ""

    def __post_init__(self) -> None:
        if self.comparison not in _COMPARISONS:
            raise ModelSpecError(
                Message(
                    gettext_noop(
                        "factor %(code)s: comparison '%(comparison)s' is not accepted; accepted: %(accepted)s"
                    ),
                    {
                        "code": self.code,
                        "comparison": str(self.comparison),
                        "accepted": ", ".join(_COMPARISONS),
                    },
                ),
                field="comparison",
                factor=self.code,
            )
        if self.points < 0:
            raise ModelSpecError(
                Message(
                    gettext_noop("factor %(code)s: points must be ≥ 0, not %(points)s"),
                    {"code": self.code, "points": self.points},
                ),
                field="points",
                factor=self.code,
            )
        if not self.cut.is_finite():
            raise ModelSpecError(
                Message(
                    gettext_noop("factor %(code)s: the cut-point must be a finite number"),
                    {"code": self.code},
                ),
                field="cut",
                factor=self.code,
            )

    @property
    def is_mrd(self) -> bool:
        """Return True for a factor read from the infusion record rather than from labs."""
        return self.input in MRD_INPUTS


@dataclass(frozen=True)
class ModelSpec:
    """A versioned score model: its factors and band thresholds (SPEC 5)."""

    name: str
    factors: tuple[FactorSpec, ...]
    intermediate_from: int = INTERMEDIATE_FROM_POINTS
    high_from: int = HIGH_FROM_POINTS

    def __post_init__(self) -> None:
        codes = [f.code for f in self.factors]
        if len(set(codes)) != len(codes):
            raise ModelSpecError(
                Message(gettext_noop("model %(name)s: factor codes must be unique"), {"name": self.name}),
                field="factors",
            )
        bands = Message(
            gettext_noop("model %(name)s: band thresholds need 0 ≤ intermediate_from ≤ high_from"),
            {"name": self.name},
        )
        if self.intermediate_from < 0:
            raise ModelSpecError(bands, field="intermediate_from")
        if self.intermediate_from > self.high_from:
            raise ModelSpecError(bands, field="high_from")

    @property
    def total_points(self) -> int:
        """Return the highest score the model can give."""
        return sum(f.points for f in self.factors)

    def band(self, points: int) -> str:
        """Return "low", "intermediate" or "high" for a number of points."""
        if points >= self.high_from:
            return BAND_HIGH
        if points >= self.intermediate_from:
            return BAND_INTERMEDIATE
        return BAND_LOW


PROVISIONAL_V0: Final = ModelSpec(
    name="provisional-v0",
    factors=(
        FactorSpec(
            "baseline_mrd",
            BASELINE_MRD_INPUT,
            ">=",
            BASELINE_MRD_CUT_PCT,
            1,
            "Baseline MRD ≥ 5 %",
            "high marrow disease burden (Park et al., NEJM 2018)",
        ),
        FactorSpec(
            "post_ld_mrd",
            POST_LD_MRD_INPUT,
            ">=",
            POST_LD_MRD_CUT_PCT,
            1,
            "Post-lymphodepletion MRD ≥ 5 %",
            "same convention, after lymphodepletion",
        ),
        FactorSpec(
            "neutropenia_d7",
            Analyte.ANC.value,
            "<",
            ANC_CUT_10E9_L,
            1,
            "ANC < 0.5 ×10^9/L",
            "CTCAE grade-4 neutropenia",
        ),
        FactorSpec(
            "crp_d7",
            Analyte.CRP.value,
            ">=",
            CRP_CUT_MG_L,
            1,
            "CRP ≥ 200 mg/L",
            "CRP ≥ 20 mg/dL marked severe CRS (Davila et al., Sci Transl Med 2014)",
        ),
        FactorSpec(
            "ferritin_d7",
            Analyte.FERRITIN.value,
            ">=",
            FERRITIN_CUT_UG_L,
            1,
            "Ferritin ≥ 10000 µg/L",
            "the CARTOX HLH criterion (Neelapu et al., Nat Rev Clin Oncol 2018)",
        ),
        FactorSpec(
            "il6_d7",
            Analyte.IL6.value,
            ">=",
            IL6_CUT_PG_ML,
            1,
            "IL-6 ≥ 500 pg/mL",
            "no agreed threshold; a project convention, to be replaced",
        ),
        FactorSpec(
            "aptt_d7",
            Analyte.APTT.value,
            ">=",
            APTT_CUT_S,
            1,
            "APTT ≥ 55.5 s",
            "1.5 × a typical upper reference limit of 37 s (CTCAE grade ≥ 2). "
            "Assays differ, so edit this to 1.5 × the local limit.",
        ),
    ),
)


def model_spec_to_dict(model: ModelSpec) -> dict[str, Any]:
    """Return a JSON-safe dict of a model, with Decimals as strings."""
    return {
        "name": model.name,
        "intermediate_from": model.intermediate_from,
        "high_from": model.high_from,
        "factors": [
            {
                "code": f.code,
                "input": f.input,
                "comparison": f.comparison,
                "cut": str(f.cut),
                "points": f.points,
                "label": f.label,
                "rationale": f.rationale,
            }
            for f in model.factors
        ],
    }


def model_spec_from_dict(data: Mapping[str, Any]) -> ModelSpec:
    """Build a model from model_spec_to_dict output; raise ValueError on bad content."""
    try:
        factors = tuple(
            FactorSpec(
                code=str(f["code"]),
                input=str(f["input"]),
                comparison=cast(FactorComparison, f["comparison"]),
                cut=Decimal(str(f["cut"])),
                points=_as_int(f["points"], "points"),
                label=str(f.get("label", "")),
                rationale=str(f.get("rationale", "")),
            )
            for f in data["factors"]
        )
        return ModelSpec(
            name=str(data["name"]),
            factors=factors,
            intermediate_from=_as_int(
                data.get("intermediate_from", INTERMEDIATE_FROM_POINTS), "intermediate_from"
            ),
            high_from=_as_int(data.get("high_from", HIGH_FROM_POINTS), "high_from"),
        )
    except KeyError as exc:
        raise RuleError(
            Message(gettext_noop("model definition lacks the field '%(field)s'"), {"field": str(exc.args[0])})
        ) from None
    except InvalidOperation:
        raise RuleError(
            Message(gettext_noop("model definition has a cut-point that is not a number"))
        ) from None


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelSpecError(
            Message(
                gettext_noop("model definition: %(name)s must be a whole number, not %(value)s"),
                {"name": name, "value": repr(value)},
            ),
            field=name,
        )
    return value


@dataclass(frozen=True)
class FactorResult:
    """One factor's outcome and why: the input used, its day and time, cut-point and points."""

    code: str
    input: str
    label: str
    comparison: str
    cut: Decimal
    points_possible: int
    points: int
    missing: bool
    value: Decimal | None
    comparator: str | None
    day: int | None
    collected_at: datetime | None
    flags: tuple[str, ...]


@dataclass(frozen=True)
class ScoreResult:
    """A score with its band, bounds and per-factor breakdown."""

    model: str
    day: int | None
    points: int
    max_points: int
    band: str
    band_final: bool
    complete: bool
    provisional: bool
    factors: tuple[FactorResult, ...]
    landmark: bool = False

    @property
    def missing(self) -> tuple[str, ...]:
        """Return the codes of the factors whose input is missing or undecided."""
        return tuple(f.code for f in self.factors if f.missing)

    @property
    def missing_lab_factors(self) -> tuple[str, ...]:
        """Return the codes of missing factors that come from labs (not MRD)."""
        return tuple(f.code for f in self.factors if f.missing and f.input not in MRD_INPUTS)


# Intervals of real numbers: (low, low_closed, high, high_closed); None is unbounded.
_Interval = tuple[Decimal | None, bool, Decimal | None, bool]


def _interval(comparison: str | None, value: Decimal) -> _Interval:
    if comparison is None:
        return (value, True, value, True)
    if comparison == ">=":
        return (value, True, None, False)
    if comparison == ">":
        return (value, False, None, False)
    if comparison == "<=":
        return (None, False, value, True)
    if comparison == "<":
        return (None, False, value, False)
    raise ValueError(f"comparator {comparison!r} is not accepted; accepted: {COMPARATORS}")


def _is_subset(inner: _Interval, outer: _Interval) -> bool:
    in_lo, in_lo_closed, in_hi, in_hi_closed = inner
    out_lo, out_lo_closed, out_hi, out_hi_closed = outer
    low_ok = out_lo is None or (
        in_lo is not None and (in_lo > out_lo or (in_lo == out_lo and (out_lo_closed or not in_lo_closed)))
    )
    high_ok = out_hi is None or (
        in_hi is not None and (in_hi < out_hi or (in_hi == out_hi and (out_hi_closed or not in_hi_closed)))
    )
    return low_ok and high_ok


def _is_disjoint(a: _Interval, b: _Interval) -> bool:
    def below(x: _Interval, y: _Interval) -> bool:
        x_hi, x_hi_closed = x[2], x[3]
        y_lo, y_lo_closed = y[0], y[1]
        if x_hi is None or y_lo is None:
            return False
        return x_hi < y_lo or (x_hi == y_lo and not (x_hi_closed and y_lo_closed))

    return below(a, b) or below(b, a)


def factor_decision(spec: FactorSpec, value: Decimal, comparator: str | None) -> bool | None:
    """Return whether a value scores the factor's point; None when a censored value can't decide."""
    allowed = _interval(comparator, value)
    point_side = _interval(spec.comparison, spec.cut)
    if _is_subset(allowed, point_side):
        return True
    if _is_disjoint(allowed, point_side):
        return False
    return None


def _first_therapy_days(
    therapy_days: Mapping[int, Iterable[str]] | Sequence[Observation],
) -> dict[str, int]:
    """Return the first day of tocilizumab and of corticosteroids, from either argument form."""
    firsts: dict[str, int] = {}

    def note(therapy: str, day: int) -> None:
        if therapy not in firsts or day < firsts[therapy]:
            firsts[therapy] = day

    if isinstance(therapy_days, Mapping):
        for day, therapies in therapy_days.items():
            for therapy in therapies:
                note(therapy, day)
    else:
        for obs in therapy_days:
            if obs.tocilizumab:
                note(THERAPY_TOCILIZUMAB, obs.day)
            if obs.corticosteroids:
                note(THERAPY_CORTICOSTEROIDS, obs.day)
    return firsts


def first_therapy_days(observations: Sequence[Observation]) -> dict[int, list[str]]:
    """The first day of each therapy as ``{day: therapies}``, for ``running_score`` on many days."""
    by_day: dict[int, list[str]] = {}
    for therapy, day in _first_therapy_days(observations).items():
        by_day.setdefault(day, []).append(therapy)
    return by_day


def _therapy_flags(lab_day: int, first_therapy: Mapping[str, int]) -> tuple[str, ...]:
    flags = []
    toci = first_therapy.get(THERAPY_TOCILIZUMAB)
    if toci is not None and lab_day >= toci:
        flags.append(FLAG_AFTER_TOCILIZUMAB)
    steroids = first_therapy.get(THERAPY_CORTICOSTEROIDS)
    if steroids is not None and lab_day >= steroids:
        flags.append(FLAG_AFTER_CORTICOSTEROIDS)
    return tuple(flags)


def _sort_key(lab: Lab) -> tuple[datetime, int, Decimal]:
    # Ties on collected_at are broken by day then value, so the choice never depends on order.
    return (lab.collected_at, lab.day, lab.value)


def _mrd_result(spec: FactorSpec, value: Decimal | None, comparator: str | None = None) -> FactorResult:
    # An MRD below detection ("<0.01") decides like a censored lab value: only when unambiguous.
    comparator = comparator or None
    decision = None if value is None else factor_decision(spec, value, comparator)
    return _result(spec, decision, value, comparator, None, None, ())


def _result(
    spec: FactorSpec,
    decision: bool | None,
    value: Decimal | None,
    comparator: str | None,
    day: int | None,
    collected_at: datetime | None,
    flags: tuple[str, ...],
) -> FactorResult:
    if value is not None and decision is None:
        flags = (*flags, FLAG_CENSORED_UNDECIDED)
    return FactorResult(
        code=spec.code,
        input=spec.input,
        label=spec.label,
        comparison=spec.comparison,
        cut=spec.cut,
        points_possible=spec.points,
        points=spec.points if decision else 0,
        missing=decision is None,
        value=value,
        comparator=comparator,
        day=day,
        collected_at=collected_at,
        flags=flags,
    )


def _lab_result(
    spec: FactorSpec,
    lab: Lab | None,
    extra_flags: tuple[str, ...],
    first_therapy: Mapping[str, int],
) -> FactorResult:
    if lab is None:
        return _result(spec, None, None, None, None, None, ())
    flags = (*extra_flags, *_therapy_flags(lab.day, first_therapy))
    decision = factor_decision(spec, lab.value, lab.comparator)
    return _result(spec, decision, lab.value, lab.comparator, lab.day, lab.collected_at, flags)


def _mrd_result_of(
    spec: FactorSpec,
    baseline: tuple[Decimal | None, str | None],
    post_ld: tuple[Decimal | None, str | None],
) -> FactorResult:
    value, comparator = baseline if spec.input == BASELINE_MRD_INPUT else post_ld
    return _mrd_result(spec, value, comparator)


def _summarise(
    model: ModelSpec,
    factors: tuple[FactorResult, ...],
    *,
    day: int,
    landmark: bool,
) -> ScoreResult:
    points = sum(f.points for f in factors)
    max_points = points + sum(f.points_possible for f in factors if f.missing)
    complete = not any(f.missing for f in factors)
    lab_missing = any(f.missing for f in factors if f.input not in MRD_INPUTS)
    provisional = not complete if landmark else (day < LANDMARK_DAY or lab_missing)
    band = model.band(points)
    return ScoreResult(
        model=model.name,
        day=day,
        points=points,
        max_points=max_points,
        band=band,
        band_final=band == model.band(max_points),
        complete=complete,
        provisional=provisional,
        factors=factors,
        landmark=landmark,
    )


def _day7_lab(labs: Sequence[Lab]) -> tuple[Lab | None, tuple[str, ...]]:
    """Pick the landmark value: earliest of day 7, else latest of day 6, else earliest of day 8."""
    on_day_7 = [lab for lab in labs if lab.day == LANDMARK_DAY]
    if on_day_7:
        return min(on_day_7, key=_sort_key), ()
    on_day_6 = [lab for lab in labs if lab.day == LANDMARK_FALLBACK_BEFORE_DAY]
    if on_day_6:
        return max(on_day_6, key=_sort_key), (FLAG_FROM_DAY_6,)
    on_day_8 = [lab for lab in labs if lab.day == LANDMARK_FALLBACK_AFTER_DAY]
    if on_day_8:
        return min(on_day_8, key=_sort_key), (FLAG_FROM_DAY_8,)
    return None, ()


def day7_score(
    model: ModelSpec,
    *,
    baseline_mrd_pct: Decimal | None,
    post_ld_mrd_pct: Decimal | None,
    labs: Sequence[Lab] | LabIndex,
    therapy_days: Mapping[int, Iterable[str]] | Sequence[Observation] = (),
    baseline_mrd_comparator: str | None = None,
    post_ld_mrd_comparator: str | None = None,
) -> ScoreResult:
    """Return the day-7 landmark score (day=7); therapy_days is observations or {day: therapies}.

    Labs must be the patient's non-voided results. A chosen censored value that cannot decide
    its factor leaves the factor missing, with no further fallback (SPEC 3.2).
    """
    first_therapy = _first_therapy_days(therapy_days)
    index = lab_index(labs)
    results = []
    for spec in model.factors:
        if spec.is_mrd:
            results.append(
                _mrd_result_of(
                    spec,
                    (baseline_mrd_pct, baseline_mrd_comparator),
                    (post_ld_mrd_pct, post_ld_mrd_comparator),
                )
            )
            continue
        landmark_days = (LANDMARK_FALLBACK_BEFORE_DAY, LANDMARK_DAY, LANDMARK_FALLBACK_AFTER_DAY)
        lab, flags = _day7_lab(index.on_days(spec.input, landmark_days))
        results.append(_lab_result(spec, lab, flags, first_therapy))
    return _summarise(model, tuple(results), day=LANDMARK_DAY, landmark=True)


def running_score(
    model: ModelSpec,
    *,
    day: int,
    baseline_mrd_pct: Decimal | None,
    post_ld_mrd_pct: Decimal | None,
    labs: Sequence[Lab] | LabIndex,
    observations: Sequence[Observation] | Mapping[int, Iterable[str]] = (),
    baseline_mrd_comparator: str | None = None,
    post_ld_mrd_comparator: str | None = None,
) -> ScoreResult:
    """Return the running (trend) score of day d from the latest lab of day d or d−1.

    Scoring every day of a patient passes ``labs`` as a ``LabIndex`` and ``observations``
    as ``first_therapy_days(...)``, both built once, so each day costs a constant time.
    """
    first_therapy = _first_therapy_days(observations)
    index = lab_index(labs)
    results = []
    for spec in model.factors:
        if spec.is_mrd:
            results.append(
                _mrd_result_of(
                    spec,
                    (baseline_mrd_pct, baseline_mrd_comparator),
                    (post_ld_mrd_pct, post_ld_mrd_comparator),
                )
            )
            continue
        recent = index.on_days(spec.input, (day, day - 1))
        lab = max(recent, key=_sort_key) if recent else None
        flags = (f"from_day_{lab.day}",) if lab is not None and lab.day != day else ()
        results.append(_lab_result(spec, lab, flags, first_therapy))
    return _summarise(model, tuple(results), day=day, landmark=False)
