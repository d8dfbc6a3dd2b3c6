"""Local fitting of the severe-CRS score on a cohort frame (pure: no Django, no clock; SPEC 5).

The methods follow TRIPOD and Steyerberg's *Clinical Prediction Models*:
prespecified factors, penalized estimation when events are few, integer points
by Sullivan et al. (Stat Med 2004), bootstrap optimism correction that repeats
the whole procedure, and the minimum sample size of Riley et al. (BMJ 2020).

The report is a JSON-safe dict: numbers are floats or ints (NaN becomes None),
and every warning or exclusion is a ``{"code": ..., **params}`` dict, so that
the pages can word it in the reader's language.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from firthmodels import FirthLogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from scoring.rules.score import LANDMARK_DAY

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DESIGN_AS_PUBLISHED: Final = "as_published"
DESIGN_LANDMARK: Final = "landmark"
DESIGNS: Final = (DESIGN_AS_PUBLISHED, DESIGN_LANDMARK)

REPORT_FORMAT: Final = 1
DEFAULT_BOOTSTRAP: Final = 200  # SPEC 5: at least 200 resamples
DEFAULT_SEED: Final = 20250701
TARGET_SENSITIVITY: Final = 0.90  # low/intermediate cut keeps sensitivity ≥ 90 %, SPEC 5
# Below this many events (or non-events) nothing can be estimated: most bootstrap
# resamples would hold one or two events, and a 7-factor model has 8 parameters.
MIN_EVENTS_TO_FIT: Final = 5
# Firth's penalty when events per variable are below this (Steyerberg 2019, ch. 13;
# Heinze & Schemper, Stat Med 2002); above it maximum likelihood is adequate.
FEW_EVENTS_PER_VARIABLE: Final = 20
RULE_OF_TEN_EPV: Final = 10  # the classic (insufficient) rule of thumb, reported for context
SOURCE_STUDY_EVENTS: Final = 17  # Ke et al. 2025: about 17 events in 125 patients
SOURCE_STUDY_AUC: Final = 0.875
# Riley et al., BMJ 2020 (doi:10.1136/bmj.m441): default targets.
RILEY_SHRINKAGE: Final = 0.9  # criterion 1: expected uniform shrinkage ≥ 0.9
RILEY_R2_DELTA: Final = 0.05  # criterion 2: optimism in Nagelkerke R² ≤ 0.05
RILEY_RISK_MARGIN: Final = 0.05  # criterion 3: overall risk within ± 0.05
RILEY_R2_FRACTION_OF_MAX: Final = 0.15  # conservative R²_CS when no prior model gives one
Z_95: Final = 1.959963984540054
CALIBRATION_GROUPS: Final = 5  # few events: five risk groups, not ten
MIN_BOOTSTRAP: Final = 10

METHOD_FIRTH: Final = "firth"
METHOD_ML: Final = "maximum_likelihood"

# Warning codes (the pages word them; see scoring.fitting.messages).
W_EARLY_EVENTS: Final = "early_events"
W_BELOW_RILEY: Final = "below_riley"
W_LOW_EPV: Final = "low_epv"
W_NONPOSITIVE: Final = "nonpositive_coefficient"
W_ROUNDS_TO_ZERO: Final = "rounds_to_zero"
W_NO_HIGH_CUT: Final = "no_high_cut"
W_FEW_BOOTSTRAP: Final = "few_bootstrap"
W_BOOTSTRAP_SKIPPED: Final = "bootstrap_skipped"
W_SYNTHETIC: Final = "synthetic_patients"
W_CONSTANT_FACTOR: Final = "constant_factor"
W_LARGE_POINTS: Final = "large_points"
LARGE_TOTAL_POINTS: Final = 20  # above this the bedside sum is unwieldy: choose a larger B


class FitRefused(ValueError):
    """The cohort cannot support a fit; the message says why."""


@dataclass(frozen=True)
class FitFactor:
    """One prespecified factor: its column, cut-point and continuous scale."""

    code: str
    input: str
    label: str
    comparison: str
    cut: float
    log10: bool
    # Values are floored before log10 (e.g. MRD 0 %), at about the assay's detection limit.
    log_floor: float = 0.0


@dataclass(frozen=True)
class FitSettings:
    """The choices of one fit."""

    design: str = DESIGN_AS_PUBLISHED
    n_bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = DEFAULT_SEED
    base: float | None = None  # Sullivan's B; None = the smallest positive coefficient
    target_sensitivity: float = TARGET_SENSITIVITY

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"design {self.design!r} is not accepted; accepted: {', '.join(DESIGNS)}")
        if self.n_bootstrap < MIN_BOOTSTRAP:
            raise ValueError(
                f"the bootstrap needs at least {MIN_BOOTSTRAP} resamples, not {self.n_bootstrap}"
            )
        if self.base is not None and not self.base > 0:
            raise ValueError(f"the base constant B must be > 0, not {self.base}")


@dataclass(frozen=True)
class LogitFit:
    """A fitted logistic model: coefficients in factor order, then the intercept."""

    coef: FloatArray
    intercept: float
    ci_low: FloatArray
    ci_high: FloatArray
    p: FloatArray
    converged: bool

    def linear_predictor(self, x: FloatArray) -> FloatArray:
        return np.asarray(x @ self.coef + self.intercept, dtype=np.float64)


@dataclass(frozen=True)
class Points:
    """Sullivan integer points of the dichotomized model."""

    base: float
    points: tuple[int, ...]
    flags: tuple[str, ...]  # "" or a warning code per factor


@dataclass(frozen=True)
class BandCuts:
    """The two proposed band cut-offs and the table they come from."""

    intermediate_from: int
    high_from: int
    high_found: bool
    table: list[dict[str, float | int]] = field(default_factory=list)


# --- small statistics ----------------------------------------------------------------------------


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def auc(y: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Area under the ROC curve (ties count one half); NaN with one class only."""
    y_arr = np.asarray(y)
    if len(np.unique(y_arr)) < 2:
        return float("nan")
    return float(roc_auc_score(y_arr, np.asarray(score, dtype=np.float64)))


def fit_logistic(x: FloatArray, y: IntArray, *, firth: bool, intervals: bool = False) -> LogitFit:
    """Logistic regression, Firth-penalized or by maximum likelihood (firthmodels).

    A column without variation cannot be estimated: it gets coefficient 0 and no interval.
    Raises numpy.linalg.LinAlgError when the remaining columns are collinear.
    """
    k = x.shape[1]
    keep = np.flatnonzero(np.ptp(x, axis=0) > 0)
    coef = np.zeros(k)
    ci = np.full((k, 2), np.nan)
    p = np.full(k, np.nan)
    if len(keep) == 0:
        # Intercept only; Firth's estimate is the logit of (events + 1/2) / (n + 1).
        events = float(y.sum()) + (0.5 if firth else 0.0)
        total = float(len(y)) + (1.0 if firth else 0.0)
        return LogitFit(coef, math.log(events / (total - events)), ci[:, 0], ci[:, 1], p, True)
    model = FirthLogisticRegression(backend="numpy", penalty_weight=0.5 if firth else 0.0, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x[:, keep], y)
        coef[keep] = np.asarray(model.coef_, dtype=np.float64)
        if intervals:
            # Profile penalized likelihood intervals and LRT p-values: better than Wald
            # ones in small samples (Heinze & Schemper 2002).
            m = len(keep)
            ci[keep] = np.asarray(model.conf_int(alpha=0.05, method="pl"), dtype=np.float64)[:m]
            model.lrt(features=list(range(m)))
            p[keep] = np.asarray(model.lrt_pvalues_, dtype=np.float64)[:m]
    return LogitFit(
        coef=coef,
        intercept=float(model.intercept_),
        ci_low=ci[:, 0],
        ci_high=ci[:, 1],
        p=p,
        converged=bool(model.converged_),
    )


def sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def sullivan_points(coefs: Sequence[float], base: float | None = None) -> Points:
    """Integer points: coefficient / B rounded half up; a coefficient ≤ 0 gets 0 and a flag."""
    positive = [c for c in coefs if c > 0]
    b = base if base is not None else (min(positive) if positive else float("nan"))
    points, flags = [], []
    for c in coefs:
        if not c > 0:
            points.append(0)
            flags.append(W_NONPOSITIVE)
            continue
        pts = math.floor(c / b + 0.5)
        points.append(pts)
        flags.append(W_ROUNDS_TO_ZERO if pts == 0 else "")
    return Points(base=b, points=tuple(points), flags=tuple(flags))


def suggested_base(coefs: Sequence[float], *, max_points: int) -> float | None:
    """A base B to suggest when the default gives too many points: the median positive coefficient.

    Raised if needed so that no factor gets more than ``max_points``, and rounded up to two
    significant digits so that it can be typed; None without a positive coefficient.
    """
    positive = [c for c in coefs if c > 0]
    if not positive:
        return None
    b = max(float(np.median(positive)), max(positive) / max_points)
    step = 10.0 ** (math.floor(math.log10(b)) - 1)
    return round(math.ceil(round(b / step, 9)) * step, 12)


def band_cutoffs(score: npt.ArrayLike, y: npt.ArrayLike, *, max_score: int, target: float) -> BandCuts:
    """Low/intermediate at the highest score keeping sensitivity ≥ target; then the Youden optimum above.

    Ties of the Youden index go to the lowest score, the more sensitive choice.
    """
    s = np.asarray(score, dtype=np.float64)
    yy = np.asarray(y, dtype=np.int64)
    events, non_events = int(yy.sum()), int((1 - yy).sum())
    table: list[dict[str, float | int]] = []
    # Sensitivity and specificity change only at observed scores, so the candidate cut-offs
    # are 0 and the observed scores: each proposed cut-off is a score some patient had.
    candidates = sorted({0} | {int(v) for v in s if 0 <= v <= max_score})
    for t in candidates:
        positive = s >= t
        sens = float((positive & (yy == 1)).sum() / events) if events else float("nan")
        spec = float((~positive & (yy == 0)).sum() / non_events) if non_events else float("nan")
        table.append(
            {
                "score": t,
                "patients_at_or_above": int(positive.sum()),
                "events_at_or_above": int((positive & (yy == 1)).sum()),
                "sensitivity": sens,
                "specificity": spec,
                "youden": sens + spec - 1,
            }
        )
    low_cut = max(int(row["score"]) for row in table if row["sensitivity"] >= target)
    above = [row for row in table if int(row["score"]) > low_cut]
    if not above:
        return BandCuts(intermediate_from=low_cut, high_from=low_cut + 1, high_found=False, table=table)
    best = max(float(row["youden"]) for row in above)
    high_cut = min(int(row["score"]) for row in above if float(row["youden"]) == best)
    return BandCuts(intermediate_from=low_cut, high_from=high_cut, high_found=True, table=table)


def riley_minimum_sample_size(
    *,
    n_parameters: int,
    prevalence: float,
    r2_cs: float | None = None,
    shrinkage: float = RILEY_SHRINKAGE,
    delta: float = RILEY_R2_DELTA,
    margin: float = RILEY_RISK_MARGIN,
) -> dict[str, float | int | bool]:
    """Minimum sample size for a binary-outcome model, Riley et al. (BMJ 2020), criteria 1–3.

    Without an anticipated Cox–Snell R², 15 % of its maximum is used, as the paper suggests.
    """
    phi = prevalence
    ln_null_per_patient = phi * math.log(phi) + (1 - phi) * math.log(1 - phi)
    max_r2 = 1 - math.exp(2 * ln_null_per_patient)
    assumed = r2_cs is None
    r2 = RILEY_R2_FRACTION_OF_MAX * max_r2 if r2_cs is None else r2_cs
    n1 = n_parameters / ((shrinkage - 1) * math.log(1 - r2 / shrinkage))
    s2 = r2 / (r2 + delta * max_r2)
    n2 = n_parameters / ((s2 - 1) * math.log(1 - r2 / s2))
    n3 = (Z_95 / margin) ** 2 * phi * (1 - phi)
    minimum = max(math.ceil(n1), math.ceil(n2), math.ceil(n3))
    return {
        "n_parameters": n_parameters,
        "prevalence": phi,
        "max_r2_cs": max_r2,
        "r2_cs": r2,
        "r2_cs_assumed": assumed,
        "shrinkage_target": shrinkage,
        "shrinkage_criterion_2": s2,
        "n_criterion_1": math.ceil(n1),
        "n_criterion_2": math.ceil(n2),
        "n_criterion_3": math.ceil(n3),
        "minimum_n": minimum,
        "minimum_events": math.ceil(minimum * phi),
        "events_per_parameter_at_minimum": minimum * phi / n_parameters,
    }


def calibration(y: IntArray, lp: FloatArray) -> dict[str, Any]:
    """Calibration slope and intercept (in the large), Brier score and grouped plot data."""
    p = sigmoid(lp)
    slope_fit = fit_logistic(lp.reshape(-1, 1), y, firth=False)
    # Calibration-in-the-large: the intercept with the linear predictor as an offset.
    intercept = _offset_intercept(y, lp)
    groups = []
    order = np.argsort(p, kind="stable")
    for chunk in np.array_split(order, min(CALIBRATION_GROUPS, len(order))):
        if len(chunk) == 0:
            continue
        groups.append(
            {
                "n": len(chunk),
                "predicted": float(p[chunk].mean()),
                "observed": float(y[chunk].mean()),
            }
        )
    return {
        "slope": _clean(float(slope_fit.coef[0])),
        "intercept": _clean(intercept),
        "brier": float(brier_score_loss(y, p)),
        "mean_predicted": float(p.mean()),
        "observed_rate": float(y.mean()),
        "groups": groups,
    }


def _offset_intercept(y: IntArray, lp: FloatArray) -> float:
    """Solve Σ (y − expit(a + lp)) = 0 for a by Newton's method."""
    a = 0.0
    for _ in range(100):
        p = sigmoid(lp + a)
        grad = float((y - p).sum())
        hess = float((p * (1 - p)).sum())
        if hess <= 0:
            return float("nan")
        step = grad / hess
        a += step
        if abs(step) < 1e-10:
            break
    return a


def _percentile_ci(values: Sequence[float]) -> tuple[float | None, float | None]:
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if len(arr) == 0:
        return None, None
    return float(np.percentile(arr, 2.5)), float(np.percentile(arr, 97.5))


# --- the cohort and its design -------------------------------------------------------------------


def point_column(code: str) -> str:
    """The column of a factor's dichotomized value (1 on the point side of the cut-point)."""
    return f"{code}_point"


def apply_design(cohort: pd.DataFrame, design: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return the analysed rows with the outcome ``y``, and the design's counts.

    ``as_published``: every row; y = severe CRS in the outcome window.
    ``landmark``: rows alive and without grade ≥ 3 by day 7; y = severe CRS that began after day 7.
    """
    onset = pd.to_numeric(cohort["severe_onset_day"], errors="coerce")
    death = pd.to_numeric(cohort["death_day"], errors="coerce")
    severe = cohort["severe_crs"].astype(bool)
    # SPEC 5: the report counts severe CRS that began *before* day 7; the landmark design
    # leaves out everyone with severe CRS *by* day 7, day 7 included.
    before_landmark = severe & (onset < LANDMARK_DAY)
    by_landmark = severe & (onset <= LANDMARK_DAY)
    counts = {
        "events_before_landmark": int(before_landmark.sum()),
        "deaths_by_landmark": int((death <= LANDMARK_DAY).sum()),
    }
    if design == DESIGN_AS_PUBLISHED:
        out = cohort.copy()
        out["y"] = severe.astype(np.int64)
        counts["excluded_by_design"] = 0
        return out, counts
    keep = ~by_landmark & ~(death <= LANDMARK_DAY)
    out = cohort.loc[keep].copy()
    out["y"] = (severe[keep] & (onset[keep] > LANDMARK_DAY)).astype(np.int64)
    counts["excluded_by_design"] = int((~keep).sum())
    return out, counts


def continuous_matrix(frame: pd.DataFrame, factors: Sequence[FitFactor]) -> FloatArray:
    """Factor values on their modelling scale: log10 (floored) where the factor says so."""
    cols = []
    for f in factors:
        v = frame[f.code].astype(float).to_numpy()
        cols.append(np.log10(np.maximum(v, f.log_floor)) if f.log10 else v)
    return np.column_stack(cols).astype(np.float64)


def dichotomized_matrix(frame: pd.DataFrame, factors: Sequence[FitFactor]) -> FloatArray:
    columns = [point_column(f.code) for f in factors]
    return np.asarray(frame[columns].astype(float).to_numpy(), dtype=np.float64)


# --- the whole procedure, as repeated in each bootstrap resample ---------------------------------


@dataclass(frozen=True)
class Procedure:
    """What one run of the procedure derives from a data set."""

    continuous: LogitFit
    dichotomized: LogitFit
    points: Points
    bands: BandCuts

    def score(self, xd: FloatArray) -> FloatArray:
        return np.asarray(xd @ np.asarray(self.points.points, dtype=np.float64), dtype=np.float64)


def run_procedure(
    xc: FloatArray,
    xd: FloatArray,
    y: IntArray,
    *,
    firth: bool,
    settings: FitSettings,
    intervals: bool = False,
) -> Procedure:
    """Fit both models, derive the points and the band cut-offs."""
    cont = fit_logistic(xc, y, firth=firth, intervals=intervals)
    dich = fit_logistic(xd, y, firth=firth, intervals=intervals)
    points = sullivan_points([float(c) for c in dich.coef], settings.base)
    score = xd @ np.asarray(points.points, dtype=np.float64)
    bands = band_cutoffs(score, y, max_score=sum(points.points), target=settings.target_sensitivity)
    return Procedure(continuous=cont, dichotomized=dich, points=points, bands=bands)


def _band_rates(score: FloatArray, y: IntArray, bands: BandCuts) -> tuple[float, float]:
    """Sensitivity of 'intermediate or high' and specificity of 'not high'."""
    events, non_events = y == 1, y == 0
    sens = float((score[events] >= bands.intermediate_from).mean()) if events.any() else float("nan")
    spec = float((score[non_events] < bands.high_from).mean()) if non_events.any() else float("nan")
    return sens, spec


# --- univariable table ---------------------------------------------------------------------------


def univariable_table(
    frame: pd.DataFrame, factors: Sequence[FitFactor], *, firth: bool
) -> list[dict[str, Any]]:
    """Each factor alone, continuous and dichotomized: OR, 95 % CI, p (descriptive only)."""
    y = frame["y"].to_numpy(dtype=np.int64)
    xc, xd = continuous_matrix(frame, factors), dichotomized_matrix(frame, factors)
    rows = []
    for i, f in enumerate(factors):
        for scale, x in (("continuous", xc[:, i]), ("dichotomized", xd[:, i])):
            row: dict[str, Any] = {"code": f.code, "label": f.label, "scale": scale, "log10": f.log10}
            if scale == "dichotomized":
                on = x == 1
                row.update(
                    {
                        "patients_with_point": int(on.sum()),
                        "events_with_point": int(y[on].sum()),
                        "patients_without_point": int((~on).sum()),
                        "events_without_point": int(y[~on].sum()),
                    }
                )
            if np.ptp(x) == 0:
                row.update({"estimable": False, "or": None, "ci_low": None, "ci_high": None, "p": None})
                rows.append(row)
                continue
            fit = fit_logistic(x.reshape(-1, 1), y, firth=firth, intervals=True)
            row.update(
                {
                    "estimable": True,
                    "coef": _clean(float(fit.coef[0])),
                    "or": _clean(math.exp(fit.coef[0])),
                    "ci_low": _clean(math.exp(fit.ci_low[0])),
                    "ci_high": _clean(math.exp(fit.ci_high[0])),
                    "p": _clean(float(fit.p[0])),
                }
            )
            rows.append(row)
    return rows


def _model_table(fit: LogitFit, factors: Sequence[FitFactor]) -> dict[str, Any]:
    return {
        "intercept": fit.intercept,
        "converged": fit.converged,
        "factors": [
            {
                "code": f.code,
                "label": f.label,
                "coef": _clean(float(fit.coef[i])),
                "or": _clean(math.exp(fit.coef[i])),
                "ci_low": _clean(math.exp(fit.ci_low[i])),
                "ci_high": _clean(math.exp(fit.ci_high[i])),
                "p": _clean(float(fit.p[i])),
            }
            for i, f in enumerate(factors)
        ],
    }


def _roc(y: IntArray, score: FloatArray) -> dict[str, list[float]]:
    fpr, tpr, thresholds = roc_curve(y, score)
    return {
        "fpr": [float(v) for v in fpr],
        "tpr": [float(v) for v in tpr],
        "thresholds": [_clean(float(v)) or 0.0 for v in thresholds],
    }


# --- the fit -------------------------------------------------------------------------------------


def fit_cohort(
    cohort: pd.DataFrame,
    factors: Sequence[FitFactor],
    settings: FitSettings,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fit the score on the cohort and return the JSON-safe report; raise FitRefused if it can't."""
    say = progress or (lambda _msg: None)
    k = len(factors)
    frame, design_counts = apply_design(cohort, settings.design)
    y = frame["y"].to_numpy(dtype=np.int64)
    n, events = len(y), int(y.sum())
    if events < MIN_EVENTS_TO_FIT or n - events < MIN_EVENTS_TO_FIT:
        raise FitRefused(
            f"too few outcomes to fit ({settings.design} design): {events} event(s) and "
            f"{n - events} non-event(s) among {n} patient(s); at least {MIN_EVENTS_TO_FIT} of each "
            "are needed. See the exclusions for the patients left out."
        )
    epv = events / k
    firth = epv < FEW_EVENTS_PER_VARIABLE
    method = METHOD_FIRTH if firth else METHOD_ML
    xc, xd = continuous_matrix(frame, factors), dichotomized_matrix(frame, factors)
    report_warnings: list[dict[str, Any]] = []

    say(f"fitting on {n} patients, {events} events ({method})")
    try:
        main = run_procedure(xc, xd, y, firth=firth, settings=settings, intervals=True)
    except np.linalg.LinAlgError:
        raise FitRefused(
            "the factors are collinear in this cohort (two factors carry the same information), "
            "so the models cannot be estimated"
        ) from None
    if not any(p > 0 for p in main.points.points):
        raise FitRefused(
            "no factor has a positive coefficient in the dichotomized model, so no points can be derived"
        )
    for f, flag in zip(factors, main.points.flags, strict=True):
        if flag:
            report_warnings.append({"code": flag, "factor": f.code})
    for i, f in enumerate(factors):
        if np.ptp(xd[:, i]) == 0:
            report_warnings.append({"code": W_CONSTANT_FACTOR, "factor": f.code})
    if sum(main.points.points) > LARGE_TOTAL_POINTS:
        report_warnings.append(
            {"code": W_LARGE_POINTS, "total": sum(main.points.points), "base": main.points.base}
        )
    if not main.bands.high_found:
        report_warnings.append({"code": W_NO_HIGH_CUT, "intermediate_from": main.bands.intermediate_from})

    lp_d = main.dichotomized.linear_predictor(xd)
    lp_c = main.continuous.linear_predictor(xc)
    score = main.score(xd)
    apparent = {
        "dichotomized_model": auc(y, lp_d),
        "integer_score": auc(y, score),
        "continuous_model": auc(y, lp_c),
    }
    sens_app, spec_app = _band_rates(score, y, main.bands)
    cal = calibration(y, lp_d)

    # Bootstrap: each resample repeats the whole procedure (Steyerberg 2019, ch. 17; Harrell).
    rng = np.random.default_rng(settings.seed)
    boot_apparent: dict[str, list[float]] = {key: [] for key in apparent}
    optimism: dict[str, list[float]] = {key: [] for key in apparent}
    boot_slopes: list[float] = []
    opt_sens: list[float] = []
    opt_spec: list[float] = []
    skipped = 0
    step = max(settings.n_bootstrap // 4, 1)
    for b in range(settings.n_bootstrap):
        idx = rng.integers(0, n, n)
        yb = y[idx]
        if yb.min() == yb.max():
            skipped += 1
            continue
        try:
            proc = run_procedure(xc[idx], xd[idx], yb, firth=firth, settings=settings)
        except np.linalg.LinAlgError:
            skipped += 1
            continue
        # The original model's AUC on the resample gives the apparent AUC's CI.
        boot_apparent["dichotomized_model"].append(auc(yb, lp_d[idx]))
        boot_apparent["integer_score"].append(auc(yb, score[idx]))
        boot_apparent["continuous_model"].append(auc(yb, lp_c[idx]))
        pairs = {
            "dichotomized_model": (
                proc.dichotomized.linear_predictor(xd[idx]),
                proc.dichotomized.linear_predictor(xd),
            ),
            "integer_score": (proc.score(xd[idx]), proc.score(xd)),
            "continuous_model": (
                proc.continuous.linear_predictor(xc[idx]),
                proc.continuous.linear_predictor(xc),
            ),
        }
        for key, (on_boot, on_orig) in pairs.items():
            optimism[key].append(auc(yb, on_boot) - auc(y, on_orig))
        lp_orig = proc.dichotomized.linear_predictor(xd)
        if np.ptp(lp_orig) > 0:
            boot_slopes.append(float(fit_logistic(lp_orig.reshape(-1, 1), y, firth=False).coef[0]))
        sb, pb = _band_rates(proc.score(xd[idx]), yb, proc.bands)
        so, po = _band_rates(proc.score(xd), y, proc.bands)
        opt_sens.append(sb - so)
        opt_spec.append(pb - po)
        if (b + 1) % step == 0:
            say(f"bootstrap {b + 1}/{settings.n_bootstrap}")
    used = settings.n_bootstrap - skipped
    if settings.n_bootstrap < DEFAULT_BOOTSTRAP:
        report_warnings.append(
            {"code": W_FEW_BOOTSTRAP, "n": settings.n_bootstrap, "minimum": DEFAULT_BOOTSTRAP}
        )
    if skipped:
        report_warnings.append({"code": W_BOOTSTRAP_SKIPPED, "n": skipped})

    performance: dict[str, Any] = {}
    for key, value in apparent.items():
        low, high = _percentile_ci(boot_apparent[key])
        mean_opt = float(np.nanmean(optimism[key])) if optimism[key] else float("nan")
        performance[key] = {
            "apparent": _clean(value),
            "ci_low": low,
            "ci_high": high,
            "optimism": _clean(mean_opt),
            "corrected": _clean(value - mean_opt),
        }
    cal["slope_corrected"] = _clean(float(np.mean(boot_slopes))) if boot_slopes else None

    riley = riley_minimum_sample_size(n_parameters=k, prevalence=events / n)
    if n < int(riley["minimum_n"]):
        report_warnings.append({"code": W_BELOW_RILEY, "n": n, "minimum_n": riley["minimum_n"]})
    if epv < RULE_OF_TEN_EPV:
        report_warnings.append({"code": W_LOW_EPV, "epv": round(epv, 2)})
    if settings.design == DESIGN_AS_PUBLISHED and design_counts["events_before_landmark"]:
        report_warnings.insert(0, {"code": W_EARLY_EVENTS, "n": design_counts["events_before_landmark"]})
    if "synthetic" in frame and bool(frame["synthetic"].any()):
        report_warnings.append({"code": W_SYNTHETIC, "n": int(frame["synthetic"].sum())})

    return {
        "format": REPORT_FORMAT,
        "design": settings.design,
        "settings": {
            "n_bootstrap": settings.n_bootstrap,
            "seed": settings.seed,
            "base": settings.base,
            "target_sensitivity": settings.target_sensitivity,
            "landmark_day": LANDMARK_DAY,
        },
        "method": method,
        "cohort": {
            "analysed": n,
            "events": events,
            "non_events": n - events,
            "prevalence": events / n,
            **design_counts,
        },
        "factors": [
            {
                "code": f.code,
                "input": f.input,
                "label": f.label,
                "comparison": f.comparison,
                "cut": f.cut,
                "log10": f.log10,
                "log_floor": f.log_floor,
            }
            for f in factors
        ],
        "univariable": univariable_table(frame, factors, firth=firth),
        "multivariable": {
            "method": method,
            "continuous": _model_table(main.continuous, factors),
            "dichotomized": _model_table(main.dichotomized, factors),
        },
        "points": {
            "base": main.points.base,
            "base_given": settings.base is not None,
            "total": sum(main.points.points),
            "factors": [
                {
                    "code": f.code,
                    "label": f.label,
                    "coef": float(main.dichotomized.coef[i]),
                    "ratio": float(main.dichotomized.coef[i]) / main.points.base,
                    "points": main.points.points[i],
                    "flag": main.points.flags[i],
                }
                for i, f in enumerate(factors)
            ],
        },
        "bands": {
            "intermediate_from": main.bands.intermediate_from,
            "high_from": main.bands.high_from,
            "high_found": main.bands.high_found,
            "target_sensitivity": settings.target_sensitivity,
            "sensitivity_apparent": _clean(sens_app),
            "sensitivity_corrected": _clean(sens_app - float(np.mean(opt_sens))) if opt_sens else None,
            "specificity_high_apparent": _clean(spec_app),
            "specificity_high_corrected": _clean(spec_app - float(np.mean(opt_spec))) if opt_spec else None,
            "table": main.bands.table,
        },
        "performance": {
            "auc": performance,
            "source_study_auc": SOURCE_STUDY_AUC,
            "calibration": cal,
            "bootstrap": {"requested": settings.n_bootstrap, "used": used, "skipped": skipped},
        },
        "roc": {
            "integer_score": _roc(y, score),
            "dichotomized_model": _roc(y, lp_d),
            "continuous_model": _roc(y, lp_c),
        },
        "sample_size": {
            "events_per_variable": epv,
            "source_study_events": SOURCE_STUDY_EVENTS,
            "source_study_epv": SOURCE_STUDY_EVENTS / k,
            "riley": riley,
            "below_minimum": n < int(riley["minimum_n"]),
        },
        "warnings": report_warnings,
    }


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively (JSONField stores strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


__all__ = [
    "DESIGNS",
    "DESIGN_AS_PUBLISHED",
    "DESIGN_LANDMARK",
    "FitFactor",
    "FitRefused",
    "FitSettings",
    "apply_design",
    "auc",
    "band_cutoffs",
    "fit_cohort",
    "json_safe",
    "riley_minimum_sample_size",
    "suggested_base",
    "sullivan_points",
]
