"""Cohort analytics for hematologists (SPEC 6): pure functions, no Django, no clock.

Inputs are plain frozen dataclasses built by ``scoring.selectors.cohort_patients``;
outputs are frozen dataclasses of numbers and codes (the page translates the words).
Every analysis states its n, its events and its design. The ROC refuses when fewer than
``MIN_PER_GROUP`` patients have severe CRS or fewer than that have not, and a survival
comparison refuses to draw curves when a group has fewer than ``MIN_PER_GROUP`` patients.

Sources: Ke et al., Curr Med Sci 2025 (apparent AUC 0.875, seed 000); seed 003
(B-cell regeneration within 45 days and relapse; median RFS 290 days, 95 % CI
163-416, for patients in CR). The relapse-free survival analyses re-test seed 003
with a landmark at day 45 to avoid immortal-time bias (Anderson, Cain & Gelber,
J Clin Oncol 1983; Dafni, Circ Cardiovasc Qual Outcomes 2011).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from statsmodels.duration.survfunc import SurvfuncRight, survdiff
from statsmodels.stats.proportion import proportion_confint

from scoring.rules.types import Event

PAPER_APPARENT_AUC = 0.875  # Ke et al. 2025, apparent (in-sample, optimistic), seed 000
SOURCE_MEDIAN_RFS_DAYS = 290  # seed 003, patients in CR (time origin not stated)
SOURCE_MEDIAN_RFS_CI_DAYS = (163, 416)  # seed 003, 95 % CI
LANDMARK_DAY = 45  # seed 003: regeneration "within 45 days"; SPEC 6
MIN_PER_GROUP = 5  # SPEC 6: no curve from fewer than 5 patients per group
SEVERE_GRADE = 3  # ASTCT grade >= 3, SPEC 3.1
MAX_GRADE = 5
CI_LEVEL = 0.95
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
BANDS = ("low", "intermediate", "high")

# Event kinds and details (SPEC 2.4), as stored.
CR = "cr"
RELAPSE = "relapse"
DEATH = "death"
HSCT = "hsct"
PREEMPTIVE_THERAPY = "preemptive_therapy"
ANTI_LEUKEMIC = "anti_leukemic"
IMMUNOMODULATORY = "immunomodulatory"

# Group keys of the survival analyses.
EARLY = "early_regeneration"
NOT_EARLY = "no_early_regeneration"

# Why a patient is left out of a landmark analysis (codes; the page says them in words).
EXCLUDED_NO_CR = "no_cr_by_landmark"
EXCLUDED_RELAPSE = "relapse_by_landmark"
EXCLUDED_DEATH = "death_by_landmark"
EXCLUDED_HSCT = "hsct_by_landmark"
EXCLUDED_FOLLOW_UP = "follow_up_ends_by_landmark"
EXCLUDED_NO_BCELL = "no_bcell_count_by_landmark"
EXCLUDED_UNCONFIRMED = "regeneration_unconfirmed_at_landmark"
EXCLUDED_NOT_EARLY = "no_early_regeneration"
EXCLUDED_NO_THERAPY = "no_preemptive_therapy_by_landmark"
EXCLUSION_ORDER = (
    EXCLUDED_DEATH,
    EXCLUDED_RELAPSE,
    EXCLUDED_HSCT,
    EXCLUDED_FOLLOW_UP,
    EXCLUDED_NO_CR,
    EXCLUDED_NO_BCELL,
    EXCLUDED_UNCONFIRMED,
    EXCLUDED_NOT_EARLY,
    EXCLUDED_NO_THERAPY,
)

# Why an analysis or comparison is not shown.
REFUSED_TOO_FEW = "too_few_per_group"
REFUSED_ONE_CLASS = "one_outcome_class"
REFUSED_EMPTY = "no_patients"


@dataclass(frozen=True)
class CohortPatient:
    """One patient's stored results under the active model, as the analyses need them."""

    key: str  # an opaque identifier, for tests and debugging only
    day7_points: int
    day7_band: str
    day7_complete: bool
    max_crs_grade: int
    severe_crs: bool
    crs_outcome_complete: bool  # every day observed to the window's end, severe-CRS onset or death
    bcell_assessed_by_landmark: bool  # at least one B-cell count in days 1..landmark
    regeneration_day: int | None  # day r of regeneration established by the landmark (SPEC 3.3)
    last_known_day: int  # last day with data or an event: follow-up ends here
    events: tuple[Event, ...] = ()
    # Regeneration suspected on the landmark day, its confirmation still to come (SPEC 3.3):
    # its group would depend on a later sample, so the patient is left out and counted.
    regeneration_unconfirmed_at_landmark: bool = False

    def first(self, kind: str) -> Event | None:
        """The earliest event of a kind."""
        found = [e for e in self.events if e.kind == kind]
        return min(found, key=lambda e: e.day) if found else None


# --- distribution of max CRS grade ------------------------------------------------------------


@dataclass(frozen=True)
class GradeDistribution:
    n: int
    counts: tuple[int, ...]  # index = grade 0..5
    severe: int
    outcome_incomplete: int  # outcome window not fully observed: their grade may still rise


def grade_distribution(patients: Sequence[CohortPatient]) -> GradeDistribution:
    """How many patients reached each max CRS grade (ASTCT 2019, days 0..window, 5 = CRS death)."""
    counts = [0] * (MAX_GRADE + 1)
    for p in patients:
        counts[min(max(p.max_crs_grade, 0), MAX_GRADE)] += 1
    return GradeDistribution(
        n=len(patients),
        counts=tuple(counts),
        severe=sum(p.severe_crs for p in patients),
        outcome_incomplete=sum(not p.crs_outcome_complete for p in patients),
    )


# --- discrimination and calibration of the day-7 score ----------------------------------------


@dataclass(frozen=True)
class ScoreCohort:
    """Patients whose day-7 score and severe-CRS outcome are both known."""

    patients: tuple[CohortPatient, ...]
    excluded_outcome_incomplete: int
    excluded_day7_incomplete: int

    @property
    def n(self) -> int:
        return len(self.patients)

    @property
    def events(self) -> int:
        return sum(p.severe_crs for p in self.patients)


def score_cohort(patients: Sequence[CohortPatient]) -> ScoreCohort:
    """Keep patients with a complete day-7 score and a known outcome; count the others by reason."""
    outcome_incomplete = [p for p in patients if not p.crs_outcome_complete]
    rest = [p for p in patients if p.crs_outcome_complete]
    kept = tuple(p for p in rest if p.day7_complete)
    return ScoreCohort(
        patients=kept,
        excluded_outcome_incomplete=len(outcome_incomplete),
        excluded_day7_incomplete=len(rest) - len(kept),
    )


@dataclass(frozen=True)
class RocResult:
    n: int
    events: int
    auc: float | None
    auc_ci: tuple[float, float] | None  # Hanley-McNeil approximation
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    thresholds: tuple[float, ...]  # points >= threshold count as positive
    refused: str = ""


def hanley_mcneil_ci(auc: float, n_events: int, n_non_events: int) -> tuple[float, float]:
    """Approximate 95 % CI of an AUC (Hanley & McNeil, Radiology 1982), clipped to [0, 1]."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_events - 1) * (q1 - auc * auc) + (n_non_events - 1) * (q2 - auc * auc)) / (
        n_events * n_non_events
    )
    half = Z_95 * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def roc(cohort: ScoreCohort) -> RocResult:
    """ROC curve and AUC of the day-7 points against observed severe CRS (grade >= 3)."""
    y = np.array([int(p.severe_crs) for p in cohort.patients], dtype=int)
    score = np.array([p.day7_points for p in cohort.patients], dtype=float)
    events = int(y.sum())
    if cohort.n == 0:
        return RocResult(0, 0, None, None, (), (), (), refused=REFUSED_EMPTY)
    if events in (0, cohort.n):
        return RocResult(cohort.n, events, None, None, (), (), (), refused=REFUSED_ONE_CLASS)
    if min(events, cohort.n - events) < MIN_PER_GROUP:
        # SPEC 6: no curve (nor its AUC) from fewer than 5 patients with or without severe CRS.
        return RocResult(cohort.n, events, None, None, (), (), (), refused=REFUSED_TOO_FEW)
    fpr, tpr, thresholds = roc_curve(y, score, drop_intermediate=False)
    auc = float(roc_auc_score(y, score))
    return RocResult(
        n=cohort.n,
        events=events,
        auc=auc,
        auc_ci=hanley_mcneil_ci(auc, events, cohort.n - events),
        fpr=tuple(float(x) for x in fpr),
        tpr=tuple(float(x) for x in tpr),
        # roc_curve starts at +inf (nobody positive); keep it JSON-safe.
        thresholds=tuple(float(x) if math.isfinite(x) else float(max(score) + 1) for x in thresholds),
    )


@dataclass(frozen=True)
class RateRow:
    """Observed severe-CRS rate in one group, with a Wilson 95 % CI."""

    label: str
    n: int
    events: int
    rate: float | None
    ci: tuple[float, float] | None


def _rate_row(label: str, members: Sequence[CohortPatient]) -> RateRow:
    n = len(members)
    events = sum(p.severe_crs for p in members)
    if n == 0:
        return RateRow(label, 0, 0, None, None)
    low, high = proportion_confint(events, n, alpha=1 - CI_LEVEL, method="wilson")
    return RateRow(label, n, events, events / n, (float(low), float(high)))


@dataclass(frozen=True)
class Calibration:
    n: int
    events: int
    by_band: tuple[RateRow, ...]
    by_points: tuple[RateRow, ...]  # every point total from 0 to the highest observed


def calibration(cohort: ScoreCohort) -> Calibration:
    """Observed severe-CRS rate per band and per point total, with counts."""
    ps = cohort.patients
    top = max((p.day7_points for p in ps), default=-1)
    return Calibration(
        n=cohort.n,
        events=cohort.events,
        by_band=tuple(_rate_row(b, [p for p in ps if p.day7_band == b]) for b in BANDS),
        by_points=tuple(_rate_row(str(k), [p for p in ps if p.day7_points == k]) for k in range(top + 1)),
    )


# --- relapse-free survival from a landmark ----------------------------------------------------


@dataclass(frozen=True)
class SurvivalRecord:
    """One patient in a landmark analysis: time from the landmark, event or censored."""

    key: str
    group: str
    time: float  # days from the landmark
    event: bool  # relapse or death; False = censored (HSCT or end of follow-up)


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan-Meier curve as steps, with the median and its 95 % CI (None = not reached)."""

    group: str
    n: int
    events: int
    times: tuple[float, ...]  # step times, starting at 0
    survival: tuple[float, ...]  # S(t) from each step time on, starting at 1
    censor_times: tuple[float, ...]
    censor_survival: tuple[float, ...]
    median: float | None
    median_ci: tuple[float | None, float | None]


@dataclass(frozen=True)
class GroupSummary:
    group: str
    n: int
    events: int


@dataclass(frozen=True)
class SurvivalComparison:
    landmark_day: int
    groups: tuple[GroupSummary, ...]
    excluded: tuple[tuple[str, int], ...]  # (reason code, count), reasons with a count only
    curves: tuple[KaplanMeier, ...]  # empty when refused
    overall: KaplanMeier | None  # all compared patients pooled; None when refused
    logrank_chi2: float | None
    logrank_p: float | None
    refused: str = ""

    @property
    def n(self) -> int:
        return sum(g.n for g in self.groups)

    @property
    def events(self) -> int:
        return sum(g.events for g in self.groups)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def kaplan_meier(group: str, records: Sequence[SurvivalRecord]) -> KaplanMeier:
    """Kaplan-Meier estimate (statsmodels SurvfuncRight) with the median RFS and its CI."""
    time = np.array([r.time for r in records], dtype=float)
    status = np.array([int(r.event) for r in records], dtype=int)
    fit = SurvfuncRight(time, status)
    times = [0.0, *(float(t) for t in fit.surv_times)]
    survival = [1.0, *(float(s) for s in fit.surv_prob)]
    censored = sorted(float(t) for t, e in zip(time, status, strict=True) if not e)
    # S(t) just after a censoring time: the survival of the last event step at or before it.
    censor_survival = [survival[int(np.searchsorted(times, t, side="right")) - 1] for t in censored]
    end = float(time.max()) if len(time) else 0.0
    if end > times[-1]:  # draw the last step on to the end of follow-up
        times.append(end)
        survival.append(survival[-1])
    if int(status.sum()) == 0:
        median: float | None = None
        ci: tuple[float | None, float | None] = (None, None)
    else:
        median = _finite(float(fit.quantile(0.5)))
        # The CI transform takes log(-log(S)), infinite where S is 0 or 1 on a small curve; the
        # bound is then "not reached" (NaN → None below), so numpy's warning is only noise.
        with np.errstate(divide="ignore", invalid="ignore"):
            low, high = fit.quantile_ci(0.5, alpha=1 - CI_LEVEL)
        ci = (_finite(float(low)), _finite(float(high)))
    return KaplanMeier(
        group=group,
        n=len(records),
        events=int(status.sum()),
        times=tuple(times),
        survival=tuple(survival),
        censor_times=tuple(censored),
        censor_survival=tuple(censor_survival),
        median=median,
        median_ci=ci,
    )


def logrank(records: Sequence[SurvivalRecord]) -> tuple[float, float]:
    """Log-rank chi-square and p (statsmodels survdiff) between the records' groups."""
    time = np.array([r.time for r in records], dtype=float)
    status = np.array([int(r.event) for r in records], dtype=int)
    group = np.array([r.group for r in records])
    chi2, p = survdiff(time, status, group)
    return float(chi2), float(p)


def landmark_record(p: CohortPatient, *, landmark: int = LANDMARK_DAY) -> SurvivalRecord | str:
    """The patient's RFS from the landmark, or the reason they are not at risk there.

    At risk at the landmark means: in CR on or before it, and alive, relapse-free,
    not transplanted and still followed on it. RFS events are relapse and death from
    any cause; an HSCT or the end of follow-up censors.
    """
    cr, relapse, death, hsct = p.first(CR), p.first(RELAPSE), p.first(DEATH), p.first(HSCT)
    follow_up_end = max([p.last_known_day, *(e.day for e in p.events)])
    if death is not None and death.day <= landmark:
        return EXCLUDED_DEATH
    if relapse is not None and relapse.day <= landmark:
        return EXCLUDED_RELAPSE
    if hsct is not None and hsct.day <= landmark:
        return EXCLUDED_HSCT
    if follow_up_end <= landmark:
        return EXCLUDED_FOLLOW_UP
    if cr is None or cr.day > landmark:
        return EXCLUDED_NO_CR
    if not p.bcell_assessed_by_landmark:
        return EXCLUDED_NO_BCELL
    if p.regeneration_unconfirmed_at_landmark:
        return EXCLUDED_UNCONFIRMED
    event_days = [e.day for e in (relapse, death) if e is not None]
    censor_day = min(follow_up_end, hsct.day if hsct is not None else follow_up_end)
    first_event = min(event_days) if event_days else None
    if first_event is not None and first_event <= censor_day:
        time, event = first_event - landmark, True
    else:
        time, event = censor_day - landmark, False
    early = p.regeneration_day is not None and p.regeneration_day <= landmark
    return SurvivalRecord(key=p.key, group=EARLY if early else NOT_EARLY, time=float(time), event=event)


def _compare(
    records: Sequence[SurvivalRecord],
    group_order: Sequence[str],
    excluded: dict[str, int],
    landmark: int,
) -> SurvivalComparison:
    groups = tuple(
        GroupSummary(g, sum(r.group == g for r in records), sum(r.group == g and r.event for r in records))
        for g in group_order
    )
    reasons = tuple((code, excluded[code]) for code in EXCLUSION_ORDER if excluded.get(code))
    refused = ""
    if not records:
        refused = REFUSED_EMPTY
    elif any(g.n < MIN_PER_GROUP for g in groups):
        refused = REFUSED_TOO_FEW
    if refused:
        return SurvivalComparison(landmark, groups, reasons, (), None, None, None, refused=refused)
    curves = tuple(kaplan_meier(g, [r for r in records if r.group == g]) for g in group_order)
    if sum(r.event for r in records) == 0:
        chi2, p = None, None  # no event: the log-rank statistic is undefined
    else:
        chi2, p = logrank(records)
    return SurvivalComparison(
        landmark_day=landmark,
        groups=groups,
        excluded=reasons,
        curves=curves,
        overall=kaplan_meier("all", records),
        logrank_chi2=chi2,
        logrank_p=p,
    )


def rfs_by_regeneration(
    patients: Sequence[CohortPatient], *, landmark: int = LANDMARK_DAY
) -> SurvivalComparison:
    """RFS from the landmark, early B-cell regeneration (r <= landmark) against none by then."""
    records: list[SurvivalRecord] = []
    excluded: Counter[str] = Counter()
    for p in patients:
        rec = landmark_record(p, landmark=landmark)
        if isinstance(rec, str):
            excluded[rec] += 1
        else:
            records.append(rec)
    return _compare(records, (EARLY, NOT_EARLY), excluded, landmark)


def rfs_by_preemptive_therapy(
    patients: Sequence[CohortPatient], *, landmark: int = LANDMARK_DAY
) -> SurvivalComparison:
    """RFS from the landmark after early regeneration, by the type of preemptive therapy.

    The group is the detail of the first preemptive therapy started on or before the
    landmark. A therapy started later cannot define a group at this landmark: its
    patients had to stay relapse-free until it started (immortal time).
    """
    records: list[SurvivalRecord] = []
    excluded: Counter[str] = Counter()
    for p in patients:
        rec = landmark_record(p, landmark=landmark)
        if isinstance(rec, str):
            excluded[rec] += 1
            continue
        if rec.group != EARLY:
            excluded[EXCLUDED_NOT_EARLY] += 1
            continue
        therapies = sorted(
            (e for e in p.events if e.kind == PREEMPTIVE_THERAPY and e.day <= landmark), key=lambda e: e.day
        )
        if not therapies or therapies[0].detail not in (ANTI_LEUKEMIC, IMMUNOMODULATORY):
            excluded[EXCLUDED_NO_THERAPY] += 1
            continue
        records.append(SurvivalRecord(rec.key, therapies[0].detail, rec.time, rec.event))
    return _compare(records, (ANTI_LEUKEMIC, IMMUNOMODULATORY), excluded, landmark)


@dataclass(frozen=True)
class CohortReport:
    """Every analysis of the cohort page."""

    n_patients: int
    grades: GradeDistribution
    score_cohort: ScoreCohort
    roc: RocResult
    calibration: Calibration
    rfs_regeneration: SurvivalComparison
    rfs_therapy: SurvivalComparison


def cohort_report(patients: Sequence[CohortPatient]) -> CohortReport:
    """Run every analysis of SPEC 6 on one cohort."""
    sc = score_cohort(patients)
    return CohortReport(
        n_patients=len(patients),
        grades=grade_distribution(patients),
        score_cohort=sc,
        roc=roc(sc),
        calibration=calibration(sc),
        rfs_regeneration=rfs_by_regeneration(patients),
        rfs_therapy=rfs_by_preemptive_therapy(patients),
    )


def cohort_constants() -> dict[str, object]:
    """The published numbers and design constants the page quotes."""
    return {
        "paper_auc": PAPER_APPARENT_AUC,
        "source_median_rfs": SOURCE_MEDIAN_RFS_DAYS,
        "source_median_rfs_low": SOURCE_MEDIAN_RFS_CI_DAYS[0],
        "source_median_rfs_high": SOURCE_MEDIAN_RFS_CI_DAYS[1],
        "landmark_day": LANDMARK_DAY,
        "min_per_group": MIN_PER_GROUP,
    }
