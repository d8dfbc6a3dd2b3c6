"""The pure fitting engine (SPEC 5 "Local fitting"); no database."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.fitting import engine
from scoring.fitting.engine import (
    DESIGN_AS_PUBLISHED,
    DESIGN_LANDMARK,
    FitFactor,
    FitRefused,
    FitSettings,
    apply_design,
    band_cutoffs,
    fit_cohort,
    point_column,
    riley_minimum_sample_size,
    sullivan_points,
)

CODES = ("strong", "weak_a", "weak_b", "noise")


def factors() -> list[FitFactor]:
    return [FitFactor(code, code, code, ">=", 0.0, log10=False) for code in CODES]


def synthetic_cohort(*, n: int, seed: int, strong: float = 2.5) -> pd.DataFrame:
    """Known structure: one strong factor, two weak ones, one pure noise; onsets on days 1–14."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({code: rng.normal(size=n) for code in CODES})
    for code in CODES:
        frame[point_column(code)] = (frame[code] >= 0).astype(int)
    lp = -3.0 + strong * frame["strong_point"] + 0.6 * frame["weak_a_point"] + 0.6 * frame["weak_b_point"]
    severe = rng.random(n) < 1 / (1 + np.exp(-lp))
    frame["severe_crs"] = severe
    frame["severe_onset_day"] = np.where(severe, rng.integers(1, 15, n), np.nan)
    frame["death_day"] = np.nan
    return frame


# --- Sullivan points ---------------------------------------------------------------------------


def test_sullivan_points_divide_by_the_smallest_positive_coefficient_and_round():
    # By hand: B = 0.4; 0.4/0.4 = 1; 1.1/0.4 = 2.75 → 3; 0.62/0.4 = 1.55 → 2; ≤ 0 → 0 and flagged.
    points = sullivan_points([0.4, 1.1, -0.2, 0.0, 0.62])
    assert points.base == pytest.approx(0.4)
    assert points.points == (1, 3, 0, 0, 2)
    assert points.flags == ("", "", engine.W_NONPOSITIVE, engine.W_NONPOSITIVE, "")


def test_sullivan_points_round_half_up_with_a_given_base_and_flag_a_zero():
    # By hand with B = 0.5: 1.25/0.5 = 2.5 → 3 (half up, not to even); 0.2/0.5 = 0.4 → 0, flagged.
    points = sullivan_points([0.5, 1.25, 0.2], base=0.5)
    assert points.points == (1, 3, 0)
    assert points.flags == ("", "", engine.W_ROUNDS_TO_ZERO)


@pytest.mark.parametrize(
    ("coefs", "max_points", "base"),
    [
        # median of 0.002, 0.9, 1.3, 2.0, 2.3, 3.4 = 1.65, rounded up to two digits
        ([2.0, -0.1, 0.9, 1.3, 0.002, 2.3, 3.4], 100, 1.7),
        ([0.5, 0.5, 0.5], 100, 0.5),  # exact already
        ([0.01, 0.02, 30.0], 100, 0.3),  # the median 0.02 would give 1500 points: 30 / 100
        ([-1.0, 0.0], 100, None),
    ],
)
def test_suggested_base_is_the_median_positive_coefficient_within_the_points_limit(coefs, max_points, base):
    suggested = engine.suggested_base(coefs, max_points=max_points)
    assert suggested == (None if base is None else pytest.approx(base))
    if suggested is not None:
        assert max(sullivan_points(coefs, suggested).points) <= max_points


# --- band cut-offs -----------------------------------------------------------------------------


def test_band_cutoffs_keep_sensitivity_then_take_the_youden_optimum_above():
    events = [0, 2, 3, 3, 4, 4, 5, 5, 5, 5]
    non_events = [0, 0, 0, 0, 1, 1, 2, 3, 4, 5]
    # By hand: sensitivity(score ≥ t) is 1.0, 0.9, 0.9, 0.8, 0.6, 0.4 for t = 0…5, so the
    # highest t with ≥ 90 % is 2. Above it, Youden J: t=3 0.8+0.7−1 = 0.5; t=4 0.6+0.8−1 = 0.4;
    # t=5 0.4+0.9−1 = 0.3, so high from 3.
    bands = band_cutoffs(events + non_events, [1] * 10 + [0] * 10, max_score=5, target=0.9)
    assert (bands.intermediate_from, bands.high_from, bands.high_found) == (2, 3, True)
    by_score = {row["score"]: row for row in bands.table}
    assert by_score[3]["sensitivity"] == pytest.approx(0.8)
    assert by_score[3]["specificity"] == pytest.approx(0.7)


def test_band_cutoffs_without_a_score_above_the_low_cut_leave_the_high_band_empty():
    bands = band_cutoffs([1, 1, 0, 1], [1, 1, 0, 0], max_score=1, target=0.9)
    assert (bands.intermediate_from, bands.high_from, bands.high_found) == (1, 2, False)


# --- Riley et al. 2020 -------------------------------------------------------------------------


def test_riley_sample_size_matches_the_papers_worked_example():
    # Riley et al., BMJ 2020 (and pmsampsize): 24 parameters, prevalence 0.174, R²_CS 0.288
    # need 623 patients by criterion 1, 662 by criterion 2: 662 patients, 116 events, EPP 4.8.
    size = riley_minimum_sample_size(n_parameters=24, prevalence=0.174, r2_cs=0.288)
    assert size["max_r2_cs"] == pytest.approx(0.6032, abs=1e-4)
    assert (size["n_criterion_1"], size["n_criterion_2"]) == (623, 662)
    assert size["minimum_n"] == 662
    assert size["minimum_events"] == 116
    assert size["events_per_parameter_at_minimum"] == pytest.approx(4.8, abs=0.01)


def test_riley_sample_size_for_the_source_study_assumes_15_percent_of_the_maximum_r2():
    # By hand for 7 factors and 17/125 events (φ = 0.136): ln L_null/n = φ ln φ + (1−φ) ln(1−φ)
    # = −0.2713 − 0.1263 = −0.3976; max R²_CS = 1 − e^(−0.7953) = 0.5485; R²_CS = 0.15 × 0.5485 = 0.0823;
    # criterion 1: 7 / ((0.9 − 1) ln(1 − 0.0823/0.9)) = 731; criterion 3: (1.96/0.05)² × 0.136 × 0.864 = 181.
    size = riley_minimum_sample_size(n_parameters=7, prevalence=17 / 125)
    assert size["r2_cs_assumed"] is True
    assert size["r2_cs"] == pytest.approx(0.0823, abs=1e-4)
    assert size["n_criterion_1"] == 731
    assert size["n_criterion_3"] == 181
    assert size["minimum_n"] == 731 > 125


# --- designs -----------------------------------------------------------------------------------


def test_landmark_design_drops_early_events_and_early_deaths_and_counts_only_later_events():
    frame = pd.DataFrame(
        {
            "severe_crs": [True, True, True, False, False, True],
            "severe_onset_day": [3, 7, 9, None, None, 20],
            "death_day": [None, None, None, 5, 40, 22],
        }
    )
    kept, counts = apply_design(frame, DESIGN_LANDMARK)
    # Onset on day 3 and on day 7 are "by day 7"; the death on day 5 is too.
    assert list(kept.index) == [2, 4, 5]
    assert list(kept["y"]) == [1, 0, 1]
    assert counts["excluded_by_design"] == 3
    # Only the onset on day 3 began *before* day 7 (SPEC 5); day 7 itself is not before it.
    assert counts["events_before_landmark"] == 1


@pytest.mark.parametrize(("onset", "before_day_7"), [(6, 1), (7, 0), (8, 0)])
def test_as_published_design_counts_events_that_began_before_day_7_not_on_it(onset, before_day_7):
    frame = pd.DataFrame(
        {
            "severe_crs": [True, True, False],
            "severe_onset_day": [onset, 12, None],
            "death_day": [None, None, 3],
        }
    )
    kept, counts = apply_design(frame, DESIGN_AS_PUBLISHED)
    assert list(kept["y"]) == [1, 1, 0]
    assert counts["events_before_landmark"] == before_day_7


# --- the whole fit -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report() -> dict:
    return fit_cohort(synthetic_cohort(n=400, seed=11), factors(), FitSettings(n_bootstrap=30, seed=5))


def test_fit_gives_the_strong_factor_the_most_points(report):
    points = {row["code"]: row["points"] for row in report["points"]["factors"]}
    assert points["strong"] > max(points["weak_a"], points["weak_b"], points["noise"])
    assert points["strong"] >= 2


def test_optimism_corrected_auc_is_at_most_the_apparent_auc(report):
    for key in ("integer_score", "dichotomized_model", "continuous_model"):
        row = report["performance"]["auc"][key]
        assert row["corrected"] <= row["apparent"]
        assert row["ci_low"] <= row["apparent"] <= row["ci_high"]


def test_fit_report_states_cohort_design_bands_and_calibration(report):
    cohort = report["cohort"]
    assert cohort["analysed"] == 400
    assert cohort["events"] + cohort["non_events"] == 400
    assert report["design"] == DESIGN_AS_PUBLISHED
    assert report["warnings"][0]["code"] == engine.W_EARLY_EVENTS
    frame = synthetic_cohort(n=400, seed=11)
    before_day_7 = int((frame["severe_crs"] & (frame["severe_onset_day"] < 7)).sum())
    assert report["warnings"][0]["n"] == cohort["events_before_landmark"] == before_day_7
    bands = report["bands"]
    assert 0 <= bands["intermediate_from"] <= bands["high_from"]
    assert bands["sensitivity_apparent"] >= 0.9
    cal = report["performance"]["calibration"]
    assert 0 < cal["brier"] < 0.25
    assert cal["groups"] and all(0 <= g["observed"] <= 1 for g in cal["groups"])
    assert report["performance"]["bootstrap"]["used"] + report["performance"]["bootstrap"]["skipped"] == 30


def test_fit_is_reproducible_with_its_seed():
    cohort = synthetic_cohort(n=150, seed=3)
    a = fit_cohort(cohort, factors(), FitSettings(n_bootstrap=15, seed=9))
    b = fit_cohort(cohort, factors(), FitSettings(n_bootstrap=15, seed=9))
    c = fit_cohort(cohort, factors(), FitSettings(n_bootstrap=15, seed=10))
    assert a["performance"] == b["performance"]
    assert (
        a["performance"]["auc"]["integer_score"]["optimism"]
        != c["performance"]["auc"]["integer_score"]["optimism"]
    )


def test_landmark_fit_counts_only_events_after_day_7():
    cohort = synthetic_cohort(n=300, seed=4)
    report = fit_cohort(cohort, factors(), FitSettings(design=DESIGN_LANDMARK, n_bootstrap=10))
    late = int((cohort["severe_crs"] & (cohort["severe_onset_day"] > 7)).sum())
    early = int((cohort["severe_crs"] & (cohort["severe_onset_day"] <= 7)).sum())
    assert report["cohort"]["events"] == late
    assert report["cohort"]["analysed"] == 300 - early
    assert all(w["code"] != engine.W_EARLY_EVENTS for w in report["warnings"])


def test_fit_refuses_a_cohort_with_too_few_events():
    cohort = synthetic_cohort(n=200, seed=1)
    cohort["severe_crs"] = False
    cohort.loc[:2, "severe_crs"] = True
    with pytest.raises(FitRefused, match="too few outcomes to fit"):
        fit_cohort(cohort, factors(), FitSettings(n_bootstrap=10))


def test_few_events_use_firth_and_warn_about_the_sample_size():
    report = fit_cohort(synthetic_cohort(n=120, seed=8), factors(), FitSettings(n_bootstrap=10))
    assert report["method"] == engine.METHOD_FIRTH
    codes = {w["code"] for w in report["warnings"]}
    assert {engine.W_BELOW_RILEY, engine.W_FEW_BOOTSTRAP} <= codes
    assert report["sample_size"]["below_minimum"] is True


def test_settings_refuse_too_few_resamples_and_an_unknown_design():
    with pytest.raises(ValueError, match="at least 10 resamples"):
        FitSettings(n_bootstrap=5)
    with pytest.raises(ValueError, match="design 'other' is not accepted"):
        FitSettings(design="other")


def test_json_safe_replaces_nan_by_none():
    assert engine.json_safe({"a": [float("nan"), 1.5, np.float64(2.0)]}) == {"a": [None, 1.5, 2.0]}
