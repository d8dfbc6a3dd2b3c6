"""Cohort analytics (SPEC 6): pure functions on hand-checkable data, no database."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from scoring import cohort
from scoring.cohort import (
    ANTI_LEUKEMIC,
    EARLY,
    IMMUNOMODULATORY,
    NOT_EARLY,
    CohortPatient,
    SurvivalRecord,
)
from scoring.rules.types import Event


def pt(
    key: str,
    *,
    events: tuple[tuple[str, int] | tuple[str, int, str], ...] = (("cr", 28),),
    regeneration_day: int | None = None,
    last_known_day: int = 300,
    bcell_assessed: bool = True,
    points: int = 0,
    band: str = "low",
    complete: bool = True,
    grade: int = 0,
    outcome_complete: bool = True,
    unconfirmed: bool = False,
) -> CohortPatient:
    return CohortPatient(
        key=key,
        day7_points=points,
        day7_band=band,
        day7_complete=complete,
        max_crs_grade=grade,
        severe_crs=grade >= 3,
        crs_outcome_complete=outcome_complete,
        bcell_assessed_by_landmark=bcell_assessed,
        regeneration_day=regeneration_day,
        last_known_day=last_known_day,
        events=tuple(Event(*e) for e in events),
        regeneration_unconfirmed_at_landmark=unconfirmed,
    )


# --- Kaplan-Meier and log-rank ----------------------------------------------------------------


def records(group: str, pairs: list[tuple[float, bool]]) -> list[SurvivalRecord]:
    return [SurvivalRecord(f"{group}{i}", group, t, e) for i, (t, e) in enumerate(pairs)]


def test_kaplan_meier_matches_the_hand_computation():
    # Events at 10, 30, 40; censored at 20 and 50.
    # S(10) = 4/5; S(30) = 4/5 * 2/3; S(40) = S(30) * 1/2; median = first t with S <= 0.5 = 40.
    km = cohort.kaplan_meier(
        "g", records("g", [(10, True), (20, False), (30, True), (40, True), (50, False)])
    )
    assert km.n == 5 and km.events == 3
    assert km.times == (0.0, 10.0, 30.0, 40.0, 50.0)
    assert km.survival == pytest.approx((1.0, 0.8, 0.8 * 2 / 3, 0.8 * 2 / 3 / 2, 0.8 * 2 / 3 / 2))
    assert km.median == 40.0
    assert km.censor_times == (20.0, 50.0)
    assert km.censor_survival == pytest.approx((0.8, 0.8 * 2 / 3 / 2))


def test_kaplan_meier_median_not_reached_is_none():
    km = cohort.kaplan_meier(
        "g", records("g", [(10, True), (20, False), (30, False), (40, False), (50, False)])
    )
    assert km.survival[-1] == pytest.approx(0.8)
    assert km.median is None
    assert km.median_ci[1] is None


def hand_logrank(times: np.ndarray, events: np.ndarray, groups: np.ndarray) -> float:
    """Two-group log-rank p from the textbook sums of observed - expected and hypergeometric variance."""
    a = groups == groups[0]
    o_minus_e = var = 0.0
    for t in np.unique(times[events == 1]):
        at_risk = times >= t
        n, n1 = at_risk.sum(), (at_risk & a).sum()
        d = ((times == t) & (events == 1)).sum()
        d1 = ((times == t) & (events == 1) & a).sum()
        o_minus_e += d1 - d * n1 / n
        if n > 1:
            var += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return float(stats.chi2.sf(o_minus_e**2 / var, df=1))


def test_logrank_p_matches_the_textbook_formula():
    a = records("a", [(5, True), (8, True), (12, False), (20, True), (25, True), (30, False)])
    b = records("b", [(8, True), (15, False), (40, True), (60, False), (70, False), (90, True)])
    chi2, p = cohort.logrank(a + b)
    all_ = a + b
    expected = hand_logrank(
        np.array([r.time for r in all_]),
        np.array([int(r.event) for r in all_]),
        np.array([r.group for r in all_]),
    )
    assert p == pytest.approx(expected, rel=1e-9)
    assert chi2 == pytest.approx(stats.chi2.isf(expected, df=1), rel=1e-6)
    assert 0 < p < 1


# --- the day-45 landmark ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "last_known_day", "reason"),
    [
        ((), 300, cohort.EXCLUDED_NO_CR),
        ((("cr", 50),), 300, cohort.EXCLUDED_NO_CR),  # CR after the landmark
        ((("cr", 28), ("relapse", 40)), 300, cohort.EXCLUDED_RELAPSE),
        ((("cr", 28), ("relapse", 45)), 300, cohort.EXCLUDED_RELAPSE),  # not relapse-free *at* day 45
        ((("cr", 28), ("death", 44, "other")), 44, cohort.EXCLUDED_DEATH),
        ((("cr", 28), ("hsct", 40)), 300, cohort.EXCLUDED_HSCT),
        ((("cr", 28), ("last_follow_up", 42)), 42, cohort.EXCLUDED_FOLLOW_UP),  # censored before day 45
    ],
)
def test_landmark_excludes_patients_not_at_risk_on_day_45(events, last_known_day, reason):
    assert cohort.landmark_record(pt("x", events=events, last_known_day=last_known_day)) == reason


def test_landmark_excludes_patients_without_a_bcell_count_by_day_45():
    assert cohort.landmark_record(pt("x", bcell_assessed=False)) == cohort.EXCLUDED_NO_BCELL


def test_landmark_excludes_a_regeneration_still_awaiting_confirmation_on_day_45():
    # Suspected but not confirmed by day 45: neither group can be decided without the future.
    assert cohort.landmark_record(pt("x", unconfirmed=True)) == cohort.EXCLUDED_UNCONFIRMED
    assert isinstance(cohort.landmark_record(pt("x", unconfirmed=False)), cohort.SurvivalRecord)


def test_landmark_time_runs_from_day_45_to_relapse():
    rec = cohort.landmark_record(pt("x", events=(("cr", 28), ("relapse", 145)), regeneration_day=30))
    assert rec == SurvivalRecord("x", EARLY, 100.0, True)


def test_death_without_relapse_is_an_rfs_event():
    rec = cohort.landmark_record(pt("x", events=(("cr", 28), ("death", 95, "other")), last_known_day=95))
    assert rec == SurvivalRecord("x", NOT_EARLY, 50.0, True)


def test_hsct_censors_follow_up_and_a_later_relapse_does_not_count():
    rec = cohort.landmark_record(pt("x", events=(("cr", 28), ("hsct", 100), ("relapse", 200))))
    assert rec == SurvivalRecord("x", NOT_EARLY, 55.0, False)


def test_end_of_follow_up_censors():
    rec = cohort.landmark_record(pt("x", events=(("cr", 28), ("last_follow_up", 245)), last_known_day=245))
    assert rec == SurvivalRecord("x", NOT_EARLY, 200.0, False)


@pytest.mark.parametrize(
    ("day", "group"), [(30, EARLY), (45, EARLY), (46, NOT_EARLY), (120, NOT_EARLY), (None, NOT_EARLY)]
)
def test_only_regeneration_on_or_before_day_45_counts_as_early(day, group):
    # The immortal-time point: a patient whose B cells return on day 120 had to be followed
    # relapse-free until day 120 to be seen regenerating; counting them as "regenerated"
    # from day 45 would credit that group with survival it was guaranteed.
    rec = cohort.landmark_record(pt("x", regeneration_day=day))
    assert isinstance(rec, SurvivalRecord) and rec.group == group


def cohort_with(n_early: int, n_not: int) -> list[CohortPatient]:
    out = []
    for i in range(n_early):
        out.append(pt(f"e{i}", regeneration_day=35, events=(("cr", 28), ("relapse", 80 + 20 * i))))
    for i in range(n_not):
        relapse = (("relapse", 200 + 40 * i),) if i % 2 else ()
        out.append(pt(f"n{i}", events=(("cr", 28), *relapse), last_known_day=400))
    return out


def test_rfs_by_regeneration_compares_groups_of_at_least_five():
    result = cohort.rfs_by_regeneration(cohort_with(5, 6))
    assert not result.refused
    assert [(g.group, g.n, g.events) for g in result.groups] == [(EARLY, 5, 5), (NOT_EARLY, 6, 3)]
    assert result.n == 11 and result.events == 8
    assert [c.group for c in result.curves] == [EARLY, NOT_EARLY]
    assert result.logrank_p is not None and result.logrank_p < 0.05
    assert result.overall is not None and result.overall.n == 11


def test_rfs_median_is_the_first_time_survival_reaches_one_half():
    result = cohort.rfs_by_regeneration(cohort_with(5, 6))
    early = result.curves[0]
    # Relapse days 80, 100, 120, 140, 160 → 35, 55, 75, 95, 115 days from the landmark.
    # S after the 3rd event = 2/5 <= 0.5, so the median is 75.
    assert early.median == 75.0


@pytest.mark.parametrize(("n_early", "n_not"), [(4, 10), (10, 4), (0, 10)])
def test_fewer_than_five_in_a_group_refuses_the_curves(n_early, n_not):
    result = cohort.rfs_by_regeneration(cohort_with(n_early, n_not))
    assert result.refused == cohort.REFUSED_TOO_FEW
    assert result.curves == () and result.logrank_p is None and result.overall is None
    assert [g.n for g in result.groups] == [n_early, n_not]


def test_exclusions_are_counted_by_reason():
    patients = [*cohort_with(5, 5), pt("nocr", events=()), pt("rel", events=(("cr", 28), ("relapse", 40)))]
    result = cohort.rfs_by_regeneration(patients)
    assert dict(result.excluded) == {cohort.EXCLUDED_NO_CR: 1, cohort.EXCLUDED_RELAPSE: 1}


def therapy_patient(key: str, detail: str, therapy_day: int, relapse_day: int | None) -> CohortPatient:
    events: tuple = (("cr", 28), ("preemptive_therapy", therapy_day, detail))
    if relapse_day is not None:
        events += (("relapse", relapse_day),)
    return pt(key, events=events, regeneration_day=30, last_known_day=500)


def test_rfs_by_therapy_groups_early_regenerators_by_therapy_started_by_day_45():
    patients = [therapy_patient(f"a{i}", ANTI_LEUKEMIC, 40, None if i < 3 else 300 + i) for i in range(5)]
    patients += [therapy_patient(f"i{i}", IMMUNOMODULATORY, 42, 90 + 10 * i) for i in range(5)]
    patients.append(therapy_patient("late", ANTI_LEUKEMIC, 60, None))  # after the landmark
    patients.append(pt("none", regeneration_day=30))  # early, untreated
    patients.append(pt("aplasia"))  # not early
    result = cohort.rfs_by_preemptive_therapy(patients)
    assert not result.refused
    assert [(g.group, g.n, g.events) for g in result.groups] == [
        (ANTI_LEUKEMIC, 5, 2),
        (IMMUNOMODULATORY, 5, 5),
    ]
    assert dict(result.excluded) == {cohort.EXCLUDED_NOT_EARLY: 1, cohort.EXCLUDED_NO_THERAPY: 2}
    assert result.logrank_p is not None and result.logrank_p < 0.05


# --- grades, ROC and calibration --------------------------------------------------------------


def test_grade_distribution_counts_each_grade():
    patients = [pt(str(i), grade=g) for i, g in enumerate([0, 0, 1, 2, 3, 4, 5])]
    patients.append(pt("open", grade=1, outcome_complete=False))
    dist = cohort.grade_distribution(patients)
    assert dist.counts == (2, 2, 1, 1, 1, 1) and dist.n == 8
    assert dist.severe == 3 and dist.outcome_incomplete == 1


def test_score_cohort_excludes_incomplete_day7_and_open_outcomes():
    patients = [pt("a"), pt("b", complete=False), pt("c", outcome_complete=False), pt("d", grade=3)]
    sc = cohort.score_cohort(patients)
    assert [p.key for p in sc.patients] == ["a", "d"]
    assert (sc.excluded_day7_incomplete, sc.excluded_outcome_incomplete) == (1, 1)
    assert (sc.n, sc.events) == (2, 1)


def test_roc_auc_agrees_with_the_pairwise_definition():
    # 5 events with points 4, 2, 5, 3, 6; 5 non-events with 1, 2, 0, 3, 1.
    # Pairs (event > non-event, a tie counts one half): 4: 5; 2: 3 + 0.5; 5: 5; 3: 4 + 0.5; 6: 5
    # → 23 of 25.
    event_points, non_event_points = [4, 2, 5, 3, 6], [1, 2, 0, 3, 1]
    patients = [pt(f"e{i}", points=s, grade=3) for i, s in enumerate(event_points)]
    patients += [pt(f"n{i}", points=s) for i, s in enumerate(non_event_points)]
    result = cohort.roc(cohort.score_cohort(patients))
    assert result.refused == ""
    assert result.auc == pytest.approx(23 / 25)
    assert result.auc == pytest.approx(roc_auc_score([1] * 5 + [0] * 5, event_points + non_event_points))
    assert (result.n, result.events) == (10, 5)
    assert result.fpr[0] == 0.0 and result.tpr[-1] == 1.0 and result.fpr[-1] == 1.0
    low, high = result.auc_ci
    assert low < result.auc < high <= 1.0


def test_roc_refuses_when_everyone_has_the_same_outcome():
    result = cohort.roc(cohort.score_cohort([pt("a", points=1), pt("b", points=3)]))
    assert result.refused == cohort.REFUSED_ONE_CLASS and result.auc is None


@pytest.mark.parametrize(
    ("events", "non_events", "refused"),
    [
        (4, 5, cohort.REFUSED_TOO_FEW),
        (5, 4, cohort.REFUSED_TOO_FEW),
        (4, 40, cohort.REFUSED_TOO_FEW),
        (5, 5, ""),
    ],
)
def test_roc_refuses_fewer_than_five_patients_with_or_without_severe_crs(events, non_events, refused):
    # SPEC 6: no curve from fewer than 5 patients per group; here the groups are the two outcomes.
    patients = [pt(f"e{i}", points=i % 4 + 1, grade=3) for i in range(events)]
    patients += [pt(f"n{i}", points=i % 3) for i in range(non_events)]
    result = cohort.roc(cohort.score_cohort(patients))
    assert result.refused == refused
    assert (result.n, result.events) == (events + non_events, events)
    if refused:
        assert result.auc is None and result.auc_ci is None and result.fpr == ()
    else:
        assert result.auc is not None and result.fpr[0] == 0.0


def test_calibration_reports_observed_rate_per_band_and_point_total():
    patients = [pt("l1", points=0), pt("l2", points=1, grade=3), pt("i1", points=2, band="intermediate")]
    patients += [pt("h1", points=4, band="high", grade=3), pt("h2", points=5, band="high", grade=4)]
    cal = cohort.calibration(cohort.score_cohort(patients))
    low, mid, high = cal.by_band
    assert (low.n, low.events, low.rate) == (2, 1, 0.5)
    assert (mid.n, mid.events, mid.rate) == (1, 0, 0.0)
    assert (high.n, high.events, high.rate) == (2, 2, 1.0)
    assert [r.label for r in cal.by_points] == ["0", "1", "2", "3", "4", "5"]
    assert cal.by_points[3].n == 0 and cal.by_points[3].rate is None
    assert low.ci[0] < 0.5 < low.ci[1]
