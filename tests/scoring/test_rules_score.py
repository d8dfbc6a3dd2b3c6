"""Tests of scoring.rules.score: provisional-v0, day-7 and running scores (SPEC 3.2, 5)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.rules.score import (
    MODEL_CAVEAT_PROVISIONAL,
    PROVISIONAL_V0,
    TREND_CAVEAT,
    FactorSpec,
    ModelSpec,
    ScoreResult,
    day7_score,
    factor_decision,
    model_spec_from_dict,
    model_spec_to_dict,
    running_score,
)
from scoring.rules.types import Lab, Observation

D = Decimal
INFUSION = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
FACTORS = {f.code: f for f in PROVISIONAL_V0.factors}


def lab(analyte: str, day: int, value: str, comparator: str | None = None, hour: int = 6) -> Lab:
    at = INFUSION.replace(hour=hour) + timedelta(days=day)
    return Lab(analyte=analyte, day=day, collected_at=at, value=D(value), comparator=comparator)


def day7_panel(anc: str, crp: str, ferritin: str, il6: str, aptt: str, day: int = 7) -> list[Lab]:
    return [
        lab("anc", day, anc),
        lab("crp", day, crp),
        lab("ferritin", day, ferritin),
        lab("il6", day, il6),
        lab("aptt", day, aptt),
    ]


def score7(
    baseline: str | None,
    post_ld: str | None,
    labs: list[Lab],
    therapy_days: Mapping[int, set[str]] | Sequence[Observation] = (),
) -> ScoreResult:
    return day7_score(
        PROVISIONAL_V0,
        baseline_mrd_pct=None if baseline is None else D(baseline),
        post_ld_mrd_pct=None if post_ld is None else D(post_ld),
        labs=labs,
        therapy_days=therapy_days,
    )


def points_by_factor(result: ScoreResult) -> list[int]:
    return [f.points for f in result.factors]


# SPEC §10 score examples.


def test_spec_example_high_band_complete() -> None:
    result = score7("12", "3", day7_panel("0.2", "250", "12000", "300", "48"))
    assert points_by_factor(result) == [1, 0, 1, 1, 1, 0, 0]
    assert (result.points, result.band, result.complete, result.max_points) == (4, "high", True, 4)
    assert result.band_final and not result.provisional and result.missing == ()


def test_spec_example_cut_points_are_inclusive_as_written() -> None:
    result = score7("0.01", "0", day7_panel("0.5", "200.0", "9999", "500", "55.4"))
    assert points_by_factor(result) == [0, 0, 0, 1, 0, 1, 0]
    assert (result.points, result.band, result.complete) == (2, "intermediate", True)


def test_spec_example_missing_inputs_give_bounds_and_band_not_final() -> None:
    result = score7("20", "10", [lab("crp", 7, "30")])
    assert (result.points, result.max_points, result.band, result.band_final) == (2, 6, "intermediate", False)
    assert result.missing == ("neutropenia_d7", "ferritin_d7", "il6_d7", "aptt_d7")
    assert not result.complete and result.provisional
    missing = [f for f in result.factors if f.missing]
    assert all(f.value is None and f.points == 0 for f in missing)


def test_day7_score_uses_day6_when_day7_missing() -> None:
    labs = [lab("crp", 6, "150", hour=6), lab("crp", 6, "210", hour=20), lab("crp", 8, "90")]
    crp = score7(None, None, labs).factors[3]
    assert (crp.value, crp.day, crp.flags, crp.points) == (D("210"), 6, ("from_day_6",), 1)


def test_day7_score_uses_earliest_of_day8_when_days_6_and_7_missing() -> None:
    labs = [lab("crp", 8, "150", hour=6), lab("crp", 8, "260", hour=18), lab("crp", 5, "300")]
    crp = score7(None, None, labs).factors[3]
    assert (crp.value, crp.day, crp.flags) == (D("150"), 8, ("from_day_8",))


def test_day7_score_uses_earliest_day7_value_and_running_score_the_latest() -> None:
    labs = [lab("crp", 7, "260", hour=18), lab("crp", 7, "150", hour=6)]
    landmark = score7(None, None, labs).factors[3]
    assert (landmark.value, landmark.points, landmark.flags) == (D("150"), 0, ())
    running = running_score(PROVISIONAL_V0, day=7, baseline_mrd_pct=None, post_ld_mrd_pct=None, labs=labs)
    assert (running.factors[3].value, running.factors[3].points) == (D("260"), 1)


def test_day7_prefers_day7_over_day6_and_day8() -> None:
    labs = [lab("crp", 6, "300"), lab("crp", 7, "100"), lab("crp", 8, "300")]
    crp = score7(None, None, labs).factors[3]
    assert (crp.value, crp.day, crp.flags) == (D("100"), 7, ())


def test_spec_example_censored_aptt_above_180_scores_and_il6_above_400_is_missing() -> None:
    labs = [lab("aptt", 7, "180", ">"), lab("il6", 7, "400", ">")]
    result = score7(None, None, labs)
    aptt = next(f for f in result.factors if f.code == "aptt_d7")
    il6 = next(f for f in result.factors if f.code == "il6_d7")
    assert (aptt.points, aptt.missing, aptt.comparator) == (1, False, ">")
    assert (il6.points, il6.missing, il6.flags) == (0, True, ("censored_undecided",))
    assert il6.value == D("400")


def test_undecided_censored_day7_value_has_no_fallback_to_day_6_or_8() -> None:
    labs = [lab("il6", 6, "900"), lab("il6", 7, "400", ">"), lab("il6", 8, "900")]
    il6 = score7(None, None, labs).factors[5]
    assert (il6.missing, il6.day, il6.value) == (True, 7, D("400"))


def test_censored_crp_below_5_scores_no_point_and_is_not_missing() -> None:
    crp = score7(None, None, [lab("crp", 7, "5", "<")]).factors[3]
    assert (crp.points, crp.missing) == (0, False)


@pytest.mark.parametrize(
    ("code", "value", "comparator", "decision"),
    [
        ("crp_d7", "5", "<", False),
        ("crp_d7", "200", "<", False),
        ("crp_d7", "200", "<=", None),
        ("crp_d7", "200", ">=", True),
        ("crp_d7", "199.999999", ">", None),
        ("crp_d7", "200", ">", True),
        ("aptt_d7", "180", ">", True),
        ("il6_d7", "400", ">", None),
        ("il6_d7", "499.999999", ">=", None),
        ("neutropenia_d7", "0.5", ">=", False),
        ("neutropenia_d7", "0.5", ">", False),
        ("neutropenia_d7", "0.5", "<", True),
        ("neutropenia_d7", "0.5", "<=", None),
        ("neutropenia_d7", "0.4", "<=", True),
        ("neutropenia_d7", "0.4", ">", None),
        ("neutropenia_d7", "0.1", None, True),
    ],
)
def test_factor_decision_for_censored_values(
    code: str, value: str, comparator: str | None, decision: bool | None
) -> None:
    assert factor_decision(FACTORS[code], D(value), comparator) is decision


# Both sides of every provisional-v0 cut-point.
CUT_POINT_SIDES = [
    ("crp", "crp_d7", "199.999999", "200"),
    ("crp", "crp_d7", "199.999999", "200.000000"),
    ("ferritin", "ferritin_d7", "9999.999999", "10000"),
    ("il6", "il6_d7", "499.999999", "500"),
    ("aptt", "aptt_d7", "55.499999", "55.5"),
    ("anc", "neutropenia_d7", "0.5", "0.499999"),
]


@pytest.mark.parametrize(("analyte", "code", "no_point", "point"), CUT_POINT_SIDES)
def test_lab_cut_points_both_sides(analyte: str, code: str, no_point: str, point: str) -> None:
    below = score7(None, None, [lab(analyte, 7, no_point)])
    above = score7(None, None, [lab(analyte, 7, point)])
    assert next(f for f in below.factors if f.code == code).points == 0
    assert next(f for f in above.factors if f.code == code).points == 1


@pytest.mark.parametrize(
    ("baseline", "post_ld", "points"),
    [("4.999999", "4.999999", 0), ("5", "4.999999", 1), ("4.999999", "5", 1), ("5", "5", 2), ("0", "100", 1)],
)
def test_mrd_cut_points_both_sides(baseline: str, post_ld: str, points: int) -> None:
    assert score7(baseline, post_ld, []).points == points


def test_missing_mrd_is_a_missing_factor() -> None:
    result = score7(None, "7", day7_panel("1", "1", "1", "1", "30"))
    assert result.missing == ("baseline_mrd",)
    assert (result.points, result.max_points, result.band_final) == (1, 2, False)
    assert not result.complete


def test_result_carries_why_for_each_factor() -> None:
    result = score7("12", "3", day7_panel("0.2", "250", "12000", "300", "48"))
    crp = result.factors[3]
    assert (crp.code, crp.input, crp.comparison, crp.cut, crp.points_possible) == (
        "crp_d7",
        "crp",
        ">=",
        D("200"),
        1,
    )
    assert crp.collected_at == INFUSION.replace(hour=6) + timedelta(days=7)
    assert (result.model, result.day, result.landmark) == ("provisional-v0", 7, True)


# Therapy flags.


def test_inputs_drawn_on_or_after_tocilizumab_are_flagged() -> None:
    observations = [Observation(day=7, tmax_c=D("39"), tocilizumab=True)]
    labs = [lab("il6", 7, "800"), lab("crp", 6, "150")]
    result = score7(None, None, labs, therapy_days=observations)
    assert result.factors[5].flags == ("after_tocilizumab",)
    assert result.factors[3].flags == ("from_day_6",)


def test_inputs_after_corticosteroids_are_flagged_with_mapping_argument() -> None:
    result = score7(
        None, None, [lab("anc", 7, "1.2")], therapy_days={4: {"corticosteroids"}, 9: {"tocilizumab"}}
    )
    assert result.factors[2].flags == ("after_corticosteroids",)


def test_both_therapies_flag_an_input() -> None:
    observations = [
        Observation(day=3, tmax_c=D("39"), tocilizumab=True),
        Observation(day=5, tmax_c=D("39"), corticosteroids=True),
    ]
    result = score7(None, None, [lab("crp", 8, "20")], therapy_days=observations)
    assert result.factors[3].flags == ("from_day_8", "after_tocilizumab", "after_corticosteroids")


# Running score.


def test_running_score_takes_latest_of_day_d_or_d_minus_1() -> None:
    labs = [lab("crp", 3, "250", hour=22), lab("crp", 4, "90", hour=6), lab("crp", 2, "400")]
    result = running_score(PROVISIONAL_V0, day=4, baseline_mrd_pct=None, post_ld_mrd_pct=None, labs=labs)
    assert result.factors[3].value == D("90")
    day5 = running_score(PROVISIONAL_V0, day=5, baseline_mrd_pct=None, post_ld_mrd_pct=None, labs=labs)
    assert (day5.factors[3].value, day5.factors[3].flags) == (D("90"), ("from_day_4",))
    day6 = running_score(PROVISIONAL_V0, day=6, baseline_mrd_pct=None, post_ld_mrd_pct=None, labs=labs)
    assert day6.factors[3].missing


def test_running_score_is_provisional_before_day_7_or_with_a_missing_lab() -> None:
    def run(day: int, labs: list[Lab], baseline: str | None = "1") -> ScoreResult:
        return running_score(
            PROVISIONAL_V0,
            day=day,
            baseline_mrd_pct=None if baseline is None else D(baseline),
            post_ld_mrd_pct=D("1"),
            labs=labs,
        )

    assert run(6, day7_panel("1", "1", "1", "1", "30", day=6)).provisional
    assert not run(7, day7_panel("1", "1", "1", "1", "30")).provisional
    assert run(7, day7_panel("1", "1", "1", "1", "30")[:4]).provisional
    # Missing MRD is not a lab factor: the trend is then not provisional but incomplete.
    no_mrd = run(9, day7_panel("1", "1", "1", "1", "30", day=9), baseline=None)
    assert (no_mrd.provisional, no_mrd.complete) == (False, False)


def test_running_score_flags_therapy_from_observations() -> None:
    labs = [lab("il6", 3, "700")]
    observations = [Observation(day=2, tmax_c=D("39"), tocilizumab=True)]
    result = running_score(
        PROVISIONAL_V0,
        day=3,
        baseline_mrd_pct=None,
        post_ld_mrd_pct=None,
        labs=labs,
        observations=observations,
    )
    assert result.factors[5].flags == ("after_tocilizumab",)
    assert (result.landmark, result.day) == (False, 3)


# Models.


def test_provisional_v0_matches_the_spec_table() -> None:
    rows = [(f.code, f.input, f.comparison, f.cut, f.points) for f in PROVISIONAL_V0.factors]
    assert rows == [
        ("baseline_mrd", "baseline_mrd_pct", ">=", D("5"), 1),
        ("post_ld_mrd", "post_ld_mrd_pct", ">=", D("5"), 1),
        ("neutropenia_d7", "anc", "<", D("0.5"), 1),
        ("crp_d7", "crp", ">=", D("200"), 1),
        ("ferritin_d7", "ferritin", ">=", D("10000"), 1),
        ("il6_d7", "il6", ">=", D("500"), 1),
        ("aptt_d7", "aptt", ">=", D("55.5"), 1),
    ]
    assert PROVISIONAL_V0.name == "provisional-v0"
    assert PROVISIONAL_V0.total_points == 7
    assert all(f.rationale for f in PROVISIONAL_V0.factors)
    assert "Davila" in FACTORS["crp_d7"].rationale


@pytest.mark.parametrize(
    ("points", "band"),
    [(0, "low"), (1, "low"), (2, "intermediate"), (3, "intermediate"), (4, "high"), (7, "high")],
)
def test_bands(points: int, band: str) -> None:
    assert PROVISIONAL_V0.band(points) == band


def test_caveats_say_what_the_model_is_not() -> None:
    assert "not the published" in MODEL_CAVEAT_PROVISIONAL
    assert "Ke et al. 2025" in MODEL_CAVEAT_PROVISIONAL
    assert TREND_CAVEAT == "trend: the model is validated on day 7 only"


def test_model_spec_round_trips_through_json() -> None:
    data = json.loads(json.dumps(model_spec_to_dict(PROVISIONAL_V0)))
    assert data["factors"][6]["cut"] == "55.5"
    assert model_spec_from_dict(data) == PROVISIONAL_V0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"comparison": "=="}, "comparison"),
        ({"points": -1}, "points"),
        ({"points": "2"}, "whole number"),
        ({"cut": "abc"}, "not a number"),
    ],
)
def test_model_spec_from_dict_refuses_bad_factors(change: dict[str, object], message: str) -> None:
    data = model_spec_to_dict(PROVISIONAL_V0)
    data["factors"][0].update(change)
    with pytest.raises(ValueError, match=message):
        model_spec_from_dict(data)


def test_model_spec_refuses_bad_band_thresholds_and_duplicate_codes() -> None:
    factor = FACTORS["crp_d7"]
    with pytest.raises(ValueError, match="band thresholds"):
        ModelSpec("m", (factor,), intermediate_from=3, high_from=2)
    with pytest.raises(ValueError, match="unique"):
        ModelSpec("m", (factor, factor))


def test_edited_model_with_more_points_and_other_bands() -> None:
    model = ModelSpec(
        "edited-1",
        (
            FactorSpec("crp_d7", "crp", ">=", D("100"), 3),
            FactorSpec("aptt_d7", "aptt", ">", D("40"), 2),
        ),
        intermediate_from=2,
        high_from=5,
    )
    result = day7_score(model, baseline_mrd_pct=None, post_ld_mrd_pct=None, labs=[lab("crp", 7, "100")])
    assert (result.points, result.max_points, result.band, result.band_final) == (3, 5, "intermediate", False)


# Properties.

_VALUES = st.decimals(min_value=D("0"), max_value=D("20000"), places=6)
_MAYBE_VALUE = st.one_of(st.none(), _VALUES)


@given(
    baseline=_MAYBE_VALUE,
    post_ld=_MAYBE_VALUE,
    values=st.fixed_dictionaries(
        {
            a: st.one_of(
                st.none(),
                st.tuples(_VALUES, st.sampled_from([None, "<", "<=", ">", ">="]), st.integers(5, 9)),
            )
            for a in ("anc", "crp", "ferritin", "il6", "aptt")
        }
    ),
)
def test_score_bounds_and_band_final(
    baseline: Decimal | None,
    post_ld: Decimal | None,
    values: dict[str, tuple[Decimal, str | None, int] | None],
) -> None:
    labs = [
        Lab(a, day, INFUSION + timedelta(days=day), value, comparator)
        for a, v in values.items()
        if v is not None
        for value, comparator, day in [v]
    ]
    for result in (
        day7_score(PROVISIONAL_V0, baseline_mrd_pct=baseline, post_ld_mrd_pct=post_ld, labs=labs),
        running_score(PROVISIONAL_V0, day=7, baseline_mrd_pct=baseline, post_ld_mrd_pct=post_ld, labs=labs),
    ):
        assert 0 <= result.points <= result.max_points <= PROVISIONAL_V0.total_points
        assert result.band == PROVISIONAL_V0.band(result.points)
        assert result.band_final == (
            PROVISIONAL_V0.band(result.points) == PROVISIONAL_V0.band(result.max_points)
        )
        assert result.complete == (not result.missing)
        if result.complete:
            assert result.points == result.max_points and result.band_final
