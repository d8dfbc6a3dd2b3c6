"""Tests of scoring.rules.astct: ASTCT 2019 grades, episodes, waiver, overrides (SPEC 3.1)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.rules.astct import (
    GRADING_SYSTEM,
    HYPOTENSION_GRADES,
    OXYGEN_GRADES,
    REVIEW_MESSAGE,
    DayGrade,
    first_severe_day,
    grade_days,
    max_crs_grade,
)
from scoring.rules.types import Event, Observation, Override

D = Decimal


def obs(
    day: int, tmax: str | None = "37.0", hypo: str = "none", oxygen: str = "none", **therapy: bool
) -> Observation:
    return Observation(
        day=day, tmax_c=None if tmax is None else D(tmax), hypotension=hypo, oxygen=oxygen, **therapy
    )


def by_day(grades: list[DayGrade]) -> dict[int, DayGrade]:
    return {g.day: g for g in grades}


# SPEC §10 ASTCT examples: (observations, day checked, grade, review).
SPEC_EXAMPLES = {
    "fever_alone_is_grade_1": ([obs(1, "38.4")], 1, 1, False),
    "fever_with_one_vasopressor_and_low_flow_is_grade_3": (
        [obs(1, "38.4", "one_vasopressor", "low_flow")],
        1,
        3,
        False,
    ),
    "vasopressors_without_fever_or_earlier_crs_is_0_for_review": (
        [obs(1, "37.2", "multiple_vasopressors")],
        1,
        0,
        True,
    ),
    "tocilizumab_in_episode_waives_fever_next_day": (
        [obs(2, "39.0", tocilizumab=True), obs(3, "37.0", oxygen="high_flow")],
        3,
        3,
        False,
    ),
    "prophylactic_tocilizumab_before_crs_does_not_waive": (
        [obs(0, "36.8", tocilizumab=True), obs(1, "37.5", oxygen="low_flow")],
        1,
        0,
        True,
    ),
    "waiver_ends_with_episode_after_two_quiet_days": (
        [obs(1, "38.6", antipyretic=True), obs(2), obs(3), obs(4, "37.0", oxygen="low_flow")],
        4,
        0,
        True,
    ),
}


@pytest.mark.parametrize(
    ("observations", "day", "grade", "review"), SPEC_EXAMPLES.values(), ids=SPEC_EXAMPLES.keys()
)
def test_spec_astct_examples(observations: list[Observation], day: int, grade: int, review: bool) -> None:
    result = by_day(grade_days(observations))[day]
    assert result.grade == grade
    assert result.review is review
    assert result.review_reason == (REVIEW_MESSAGE if review else "")


def test_tocilizumab_example_onset_day_is_grade_1_and_day_3_is_waived() -> None:
    grades = by_day(grade_days([obs(2, "39.0", tocilizumab=True), obs(3, "37.0", oxygen="high_flow")]))
    assert (grades[2].grade, grades[2].episode_onset, grades[2].fever) == (1, 2, True)
    assert (grades[3].waived, grades[3].episode_onset, grades[3].fever) == (True, 2, False)


def test_fever_before_infusion_starts_no_episode_and_gets_no_grade() -> None:
    grades = grade_days([obs(-2, "38.5", antipyretic=True), obs(0, "37.0", oxygen="low_flow")])
    assert [g.day for g in grades] == [0]
    assert grades[0].episode_onset is None
    assert (grades[0].grade, grades[0].review) == (0, True)


def test_review_message_is_the_spec_wording() -> None:
    assert REVIEW_MESSAGE == (
        "hypotension/hypoxia without fever: not graded as CRS. Check for masked fever, or another cause."
    )


@pytest.mark.parametrize(
    ("tmax", "fever"), [("37.999", False), ("38.0", True), ("38", True), ("38.01", True), (None, False)]
)
def test_fever_is_tmax_at_least_38(tmax: str | None, fever: bool) -> None:
    (grade,) = grade_days([obs(1, tmax)])
    assert grade.fever is fever
    assert grade.grade == (1 if fever else 0)


@pytest.mark.parametrize(("hypo", "expected"), list(HYPOTENSION_GRADES.items()))
def test_hypotension_grades_with_fever(hypo: str, expected: int) -> None:
    (grade,) = grade_days([obs(1, "38.5", hypo=hypo)])
    assert grade.grade == max(1, expected)


@pytest.mark.parametrize(("oxygen", "expected"), list(OXYGEN_GRADES.items()))
def test_oxygen_grades_with_fever(oxygen: str, expected: int) -> None:
    (grade,) = grade_days([obs(1, "38.5", oxygen=oxygen)])
    assert grade.grade == max(1, expected)


def test_grade_is_the_maximum_of_fever_hypotension_and_oxygen() -> None:
    (grade,) = grade_days([obs(1, "38.5", "no_vasopressor", "positive_pressure")])
    assert grade.grade == 4


def test_waived_day_without_hypotension_or_oxygen_is_grade_0_not_review() -> None:
    grades = by_day(grade_days([obs(1, "38.5", tocilizumab=True), obs(2, "37.0")]))
    assert (grades[2].grade, grades[2].waived, grades[2].review) == (0, True, False)


def test_fever_alone_is_not_waived() -> None:
    (grade,) = grade_days([obs(1, "38.5", antipyretic=True)])
    assert grade.waived is False


@pytest.mark.parametrize("therapy", ["antipyretic", "tocilizumab", "corticosteroids"])
def test_each_therapy_in_episode_waives_fever(therapy: str) -> None:
    day2 = Observation(
        day=2,
        tmax_c=D("38.2"),
        antipyretic=therapy == "antipyretic",
        tocilizumab=therapy == "tocilizumab",
        corticosteroids=therapy == "corticosteroids",
    )
    grades = by_day(grade_days([obs(1, "38.5"), day2, obs(3, "37.0", "one_vasopressor")]))
    assert (grades[3].grade, grades[3].waived) == (3, True)


def test_therapy_on_a_later_day_of_the_episode_waives_from_that_day_only() -> None:
    grades = by_day(
        grade_days(
            [
                obs(1, "38.5"),
                obs(2, "37.0", oxygen="low_flow"),
                obs(3, "37.0", oxygen="low_flow", tocilizumab=True),
            ]
        )
    )
    assert (grades[2].grade, grades[2].review) == (0, True)
    assert (grades[3].grade, grades[3].waived) == (2, True)


def test_episode_stays_open_without_therapy_so_no_waiver_is_needed_to_stay_in_it() -> None:
    grades = by_day(grade_days([obs(1, "38.5"), obs(2, "37.0", oxygen="low_flow")]))
    assert grades[2].episode_onset == 1
    assert (grades[2].grade, grades[2].review) == (0, True)


def test_episode_closes_on_the_day_after_the_second_quiet_day() -> None:
    grades = by_day(
        grade_days([obs(1, "38.6", antipyretic=True), obs(2), obs(3), obs(4, "37.0", oxygen="low_flow")])
    )
    assert [grades[d].episode_onset for d in (1, 2, 3, 4)] == [1, 1, 1, None]
    assert grades[3].waived is True


def test_single_quiet_day_does_not_close_the_episode() -> None:
    grades = by_day(
        grade_days(
            [
                obs(1, "38.6", tocilizumab=True),
                obs(2),
                obs(3, "37.0", oxygen="low_flow"),
                obs(4),
                obs(5, "37.0", oxygen="high_flow"),
            ]
        )
    )
    assert (grades[5].grade, grades[5].episode_onset, grades[5].waived) == (3, 1, True)


def test_a_day_without_a_row_breaks_the_quiet_chain() -> None:
    grades = by_day(
        grade_days([obs(1, "38.6", tocilizumab=True), obs(2), obs(4), obs(5, "37.0", oxygen="low_flow")])
    )
    assert (grades[5].grade, grades[5].episode_onset) == (2, 1)


def test_a_day_without_tmax_is_not_quiet() -> None:
    grades = by_day(
        grade_days(
            [obs(1, "38.6", tocilizumab=True), obs(2), obs(3, None), obs(4, "37.0", oxygen="low_flow")]
        )
    )
    assert (grades[4].grade, grades[4].episode_onset) == (2, 1)


@pytest.mark.parametrize(("hypo", "oxygen"), [("no_vasopressor", "none"), ("none", "low_flow")])
def test_a_day_with_organ_support_is_not_quiet(hypo: str, oxygen: str) -> None:
    grades = by_day(
        grade_days(
            [
                obs(1, "38.6", tocilizumab=True),
                obs(2),
                obs(3, "37.0", hypo, oxygen),
                obs(4),
                obs(5, "37.0", oxygen="low_flow"),
            ]
        )
    )
    assert grades[5].episode_onset == 1


def test_two_quiet_days_after_a_gap_close_the_episode() -> None:
    grades = by_day(
        grade_days([obs(1, "38.6", tocilizumab=True), obs(3), obs(4), obs(5, "37.0", oxygen="low_flow")])
    )
    assert (grades[5].grade, grades[5].episode_onset, grades[5].review) == (0, None, True)


def test_a_later_fever_starts_a_new_episode_and_earlier_therapy_does_not_waive() -> None:
    grades = by_day(
        grade_days(
            [
                obs(1, "38.6", tocilizumab=True),
                obs(2),
                obs(3),
                obs(6, "38.3"),
                obs(7, "37.0", oxygen="low_flow"),
                obs(8, "37.0", oxygen="low_flow", corticosteroids=True),
            ]
        )
    )
    assert grades[6].episode_onset == 6
    assert (grades[7].grade, grades[7].review) == (0, True)
    assert (grades[8].grade, grades[8].waived) == (2, True)


def test_override_replaces_the_grade_and_keeps_the_computed_one() -> None:
    (grade,) = grade_days([obs(1, "38.5", oxygen="low_flow")], [Override(day=1, grade=1)])
    assert (grade.computed_grade, grade.grade, grade.overridden) == (2, 1, True)


def test_override_to_0_on_a_fever_day_starts_no_episode() -> None:
    grades = by_day(
        grade_days(
            [obs(1, "38.5", antipyretic=True), obs(2, "37.0", oxygen="low_flow")],
            [Override(day=1, grade=0)],
        )
    )
    assert (grades[1].grade, grades[1].computed_grade, grades[1].episode_onset) == (0, 1, None)
    assert (grades[2].grade, grades[2].review, grades[2].episode_onset) == (0, True, None)


def test_after_an_override_to_0_a_later_fever_starts_the_episode() -> None:
    grades = by_day(
        grade_days(
            [obs(1, "38.5", tocilizumab=True), obs(2, "38.4"), obs(3, "37.0", oxygen="high_flow")],
            [Override(day=1, grade=0)],
        )
    )
    assert grades[2].episode_onset == 2
    # Tocilizumab on day 1 came before this episode's onset, so it does not waive day 3.
    assert (grades[3].grade, grades[3].review) == (0, True)


def test_override_to_nonzero_on_a_day_without_fever_starts_no_episode() -> None:
    grades = by_day(
        grade_days(
            [obs(1, "37.5", oxygen="low_flow", tocilizumab=True), obs(2, "37.0", oxygen="low_flow")],
            [Override(day=1, grade=2)],
        )
    )
    assert (grades[1].grade, grades[1].episode_onset) == (2, None)
    assert (grades[2].grade, grades[2].review) == (0, True)


def test_override_inside_episode_does_not_change_episode_logic() -> None:
    grades = by_day(
        grade_days(
            [obs(1, "38.5", tocilizumab=True), obs(2, "38.1"), obs(3, "37.0", oxygen="low_flow")],
            [Override(day=2, grade=0)],
        )
    )
    assert grades[2].grade == 0
    assert (grades[3].grade, grades[3].episode_onset) == (2, 1)


def test_review_flag_stays_on_an_overridden_day() -> None:
    (grade,) = grade_days([obs(1, "37.0", "no_vasopressor")], [Override(day=1, grade=2)])
    assert (grade.grade, grade.computed_grade, grade.review) == (2, 0, True)


def test_overrides_on_days_without_observation_rows_are_ignored() -> None:
    grades = grade_days([obs(1, "38.5")], [Override(day=2, grade=3)])
    assert [g.day for g in grades] == [1]


def test_override_grade_must_be_0_to_4() -> None:
    with pytest.raises(ValueError, match="accepted: 0-4"):
        Override(day=1, grade=5)


def test_two_rows_for_one_day_are_refused() -> None:
    with pytest.raises(ValueError, match="two observation rows"):
        grade_days([obs(1), obs(1, "38.0")])


def test_unknown_category_is_refused_with_accepted_values() -> None:
    with pytest.raises(ValueError, match="accepted: none, low_flow, high_flow, positive_pressure"):
        grade_days([obs(1, "38.5", oxygen="nasal")])


def test_grades_are_sorted_by_day_and_record_the_grading_system() -> None:
    grades = grade_days([obs(3), obs(0), obs(1)])
    assert [g.day for g in grades] == [0, 1, 3]
    assert {g.grading_system for g in grades} == {GRADING_SYSTEM} == {"ASTCT-2019"}


def test_day_grade_carries_the_therapies_given() -> None:
    (grade,) = grade_days([obs(1, "38.5", antipyretic=True, corticosteroids=True)])
    assert (grade.antipyretic, grade.tocilizumab, grade.corticosteroids) == (True, False, True)


# Max grade and severe CRS.


def test_max_grade_over_outcome_window() -> None:
    grades = grade_days(
        [obs(2, "38.5"), obs(5, "38.5", "one_vasopressor"), obs(31, "39", "multiple_vasopressors")]
    )
    result = max_crs_grade(grades, [])
    assert (result.grade, result.day, result.by_death, result.severe) == (3, 5, False, True)
    assert max_crs_grade(grades, [], window=31).grade == 4


def test_max_grade_is_0_with_no_day_without_grades() -> None:
    result = max_crs_grade([], [])
    assert (result.grade, result.day, result.severe) == (0, None, False)


def test_death_from_crs_makes_max_grade_5_without_an_observation_row() -> None:
    grades = grade_days([obs(2, "38.5")])
    result = max_crs_grade(grades, [Event("death", 9, "crs")])
    assert (result.grade, result.day, result.by_death, result.severe) == (5, 9, True, True)


def test_death_from_other_cause_does_not_make_grade_5() -> None:
    grades = grade_days([obs(2, "38.5")])
    assert max_crs_grade(grades, [Event("death", 9, "other")]).grade == 1


def test_grade_2_is_not_severe() -> None:
    assert max_crs_grade(grade_days([obs(2, "38.5", oxygen="low_flow")]), []).severe is False


def test_overridden_grade_counts_for_max_and_first_severe_day() -> None:
    grades = grade_days([obs(2, "38.5"), obs(3, "38.5", oxygen="high_flow")], [Override(day=2, grade=3)])
    assert first_severe_day(grades) == (2, 3)
    assert max_crs_grade(grades, []).day == 2


def test_first_severe_day_looks_at_any_day() -> None:
    grades = grade_days([obs(2, "38.5"), obs(40, "38.5", "multiple_vasopressors")])
    assert first_severe_day(grades) == (40, 4)
    assert first_severe_day(grade_days([obs(2, "38.5")])) is None


# Properties.

_TMAX = st.one_of(st.none(), st.decimals(min_value=D("35.0"), max_value=D("41.0"), places=1))
_OBS = st.builds(
    Observation,
    day=st.integers(min_value=-3, max_value=20),
    tmax_c=_TMAX,
    hypotension=st.sampled_from(list(HYPOTENSION_GRADES)),
    oxygen=st.sampled_from(list(OXYGEN_GRADES)),
    antipyretic=st.booleans(),
    tocilizumab=st.booleans(),
    corticosteroids=st.booleans(),
)


@given(
    rows=st.lists(_OBS, max_size=15, unique_by=lambda o: o.day),
    overrides=st.dictionaries(st.integers(min_value=0, max_value=20), st.integers(min_value=0, max_value=4)),
)
def test_grades_are_0_to_4_and_overrides_win(rows: list[Observation], overrides: dict[int, int]) -> None:
    grades = grade_days(rows, [Override(day=d, grade=g) for d, g in overrides.items()])
    assert [g.day for g in grades] == sorted(o.day for o in rows if o.day >= 0)
    for g in grades:
        assert 0 <= g.computed_grade <= 4
        assert 0 <= g.grade <= 4
        if g.day in overrides:
            assert g.grade == overrides[g.day] and g.overridden
        else:
            assert g.grade == g.computed_grade and not g.overridden
        if g.fever:
            assert g.computed_grade >= 1
        if g.review:
            assert g.computed_grade == 0 and not g.fever and not g.waived


# The grade explains itself (issue 8, item 5): each day carries its reasons.


def reasons(g: DayGrade) -> list[str]:
    return [str(r) for r in g.reasons]


def test_a_fever_day_gives_its_temperature_as_the_reason() -> None:
    (g,) = grade_days([obs(1, "38.6")])
    assert (g.grade, reasons(g)) == (1, ["fever 38.6 °C"])


def test_a_waived_day_says_from_which_day_and_by_which_therapy_fever_is_carried() -> None:
    grades = by_day(grade_days([obs(1, "38.9", antipyretic=True), obs(2, "37.2", oxygen="low_flow")]))
    assert reasons(grades[1]) == ["fever 38.9 °C"]
    assert reasons(grades[2]) == ["fever carried from day +1 (antipyretic)", "low-flow O₂ ≤ 6 L/min"]
    assert grades[2].grade == 2


@pytest.mark.parametrize(
    ("hypo", "oxygen", "expected"),
    [
        ("no_vasopressor", "none", ["hypotension without vasopressor"]),
        ("one_vasopressor", "none", ["one vasopressor"]),
        ("multiple_vasopressors", "none", ["several vasopressors"]),
        ("none", "high_flow", ["high-flow O₂ (> 6 L/min, or a mask)"]),
        ("none", "positive_pressure", ["positive-pressure ventilation (CPAP, BiPAP, intubation)"]),
        ("one_vasopressor", "low_flow", ["one vasopressor", "low-flow O₂ ≤ 6 L/min"]),
    ],
)
def test_organ_support_is_named_among_the_reasons(hypo: str, oxygen: str, expected: list[str]) -> None:
    (g,) = grade_days([obs(1, "38.5", hypo=hypo, oxygen=oxygen)])
    assert reasons(g) == ["fever 38.5 °C", *expected]


def test_a_day_without_fever_says_so_and_a_review_day_gives_the_review_reason() -> None:
    grades = by_day(grade_days([obs(0, "37.1"), obs(1, None), obs(2, "37.0", hypo="no_vasopressor")]))
    assert reasons(grades[0]) == ["no fever (Tmax 37.1 °C)"]
    assert reasons(grades[1]) == ["Tmax not recorded"]
    assert reasons(grades[2]) == [
        "no fever (Tmax 37.0 °C)",
        "hypotension without vasopressor",
        REVIEW_MESSAGE,
    ]


def test_an_override_says_the_grade_was_set_by_hand_and_keeps_the_computed_reasons() -> None:
    (g,) = grade_days([obs(1, "38.5", oxygen="low_flow")], [Override(1, 0)])
    assert reasons(g) == ["fever 38.5 °C", "low-flow O₂ ≤ 6 L/min", "grade set by hand to 0 (computed 2)"]
