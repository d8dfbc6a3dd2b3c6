"""Tests of scoring.rules.bcell: B-cell regeneration status, both modes (SPEC 3.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.rules.bcell import (
    AFTER_HSCT,
    APLASIA,
    APLASIA_CAVEAT,
    APLASIA_NOT_ACHIEVED,
    EARLY,
    EARLY_REGENERATION_EVIDENCE,
    LATE,
    NOT_ASSESSED,
    REGENERATION_SUSPECTED,
    bcell_status,
    bcell_status_by_day,
)
from scoring.rules.types import Lab, SiteParams

INFUSION = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
CONFIRM_OFF = SiteParams(confirm_regeneration=False)
CONFIRM_ON = SiteParams()


def sample(day: int, value: str, comparator: str | None = None, hour: int = 9) -> Lab:
    at = INFUSION.replace(hour=hour) + timedelta(days=day)
    return Lab("bcell", day, at, Decimal(value), comparator)


def samples(*rows: tuple[int, str]) -> list[Lab]:
    return [sample(day, value.lstrip("<"), "<" if value.startswith("<") else None) for day, value in rows]


# SPEC §10, τ = 0, W = 45: (samples, as-of day, status, first_regeneration_day).
CONFIRMATION_OFF = {
    "aplasia_continues": (samples((7, "0"), (14, "0"), (28, "0"), (60, "0")), 60, APLASIA, None),
    "early_regeneration_day_35": (samples((7, "0"), (21, "0"), (35, "4")), 35, EARLY, 35),
    "early_regeneration_on_day_45_is_within_window": (samples((7, "0"), (28, "0"), (45, "1")), 45, EARLY, 45),
    "late_regeneration_day_46": (samples((7, "0"), (30, "0"), (46, "2")), 46, LATE, 46),
    "early_detectable_before_aplasia_is_not_regeneration": (
        samples((3, "15"), (7, "0"), (40, "0")),
        40,
        APLASIA,
        None,
    ),
    "aplasia_not_achieved": (samples((3, "40"), (10, "22")), 10, APLASIA_NOT_ACHIEVED, None),
}

CONFIRMATION_ON = {
    "single_detectable_sample_is_suspected": (
        samples((7, "0"), (21, "0"), (35, "4")),
        35,
        REGENERATION_SUSPECTED,
        35,
    ),
    "two_detectable_samples_confirm_from_the_first": (samples((7, "0"), (35, "4"), (42, "6")), 42, EARLY, 35),
    "undetectable_repeat_returns_to_aplasia": (samples((7, "0"), (30, "3"), (37, "0")), 37, APLASIA, None),
    "confirmed_late_but_r_within_window_is_early": (
        samples((7, "<1"), (44, "2"), (52, "5")),
        52,
        EARLY,
        44,
    ),
}


@pytest.mark.parametrize(
    ("rows", "as_of", "status", "r"), CONFIRMATION_OFF.values(), ids=CONFIRMATION_OFF.keys()
)
def test_spec_bcell_examples_confirmation_off(
    rows: list[Lab], as_of: int, status: str, r: int | None
) -> None:
    result = bcell_status(rows, as_of_day=as_of, params=CONFIRM_OFF)
    assert (result.status, result.first_regeneration_day) == (status, r)
    assert result.confirmed is False


@pytest.mark.parametrize(
    ("rows", "as_of", "status", "r"), CONFIRMATION_ON.values(), ids=CONFIRMATION_ON.keys()
)
def test_spec_bcell_examples_confirmation_on(rows: list[Lab], as_of: int, status: str, r: int | None) -> None:
    result = bcell_status(rows, as_of_day=as_of, params=CONFIRM_ON)
    assert (result.status, result.first_regeneration_day) == (status, r)


def test_spec_bcell_example_after_hsct() -> None:
    rows = samples((7, "0"), (20, "0"), (60, "80"))
    result = bcell_status(rows, as_of_day=60, params=CONFIRM_ON, hsct_day=30)
    assert (result.status, result.first_regeneration_day) == (AFTER_HSCT, None)


def test_suspicion_reports_the_suspected_sample_day() -> None:
    result = bcell_status(samples((7, "0"), (35, "4")), as_of_day=40, params=CONFIRM_ON)
    assert (result.suspected_day, result.first_regeneration_day, result.confirmed) == (35, 35, False)


def test_confirmed_regeneration_is_marked_confirmed() -> None:
    result = bcell_status(samples((7, "0"), (35, "4"), (42, "6")), as_of_day=42, params=CONFIRM_ON)
    assert (result.confirmed, result.suspected_day, result.samples_used) == (True, None, 3)


def test_later_detectable_sample_after_refuted_suspicion_starts_a_new_one() -> None:
    rows = samples((7, "0"), (30, "3"), (37, "0"), (50, "2"))
    assert bcell_status(rows, as_of_day=50, params=CONFIRM_ON).suspected_day == 50
    confirmed = bcell_status([*rows, sample(57, "4")], as_of_day=57, params=CONFIRM_ON)
    assert (confirmed.status, confirmed.first_regeneration_day) == (LATE, 50)


def test_no_samples_is_not_assessed() -> None:
    result = bcell_status([], as_of_day=30, params=CONFIRM_ON)
    assert (result.status, result.samples_used) == (NOT_ASSESSED, 0)


def test_samples_before_day_1_and_after_as_of_day_are_ignored() -> None:
    rows = [sample(0, "0"), sample(-2, "0"), sample(5, "30"), sample(20, "0")]
    result = bcell_status(rows, as_of_day=10, params=CONFIRM_ON)
    assert (result.status, result.samples_used) == (APLASIA_NOT_ACHIEVED, 1)


def test_other_analytes_are_ignored() -> None:
    rows = [Lab("anc", 7, INFUSION + timedelta(days=7), Decimal(0)), sample(10, "5")]
    assert bcell_status(rows, as_of_day=10, params=CONFIRM_OFF).status == APLASIA_NOT_ACHIEVED


@pytest.mark.parametrize(
    ("comparator", "value", "status"),
    [("<", "1", EARLY), ("<=", "1", EARLY), (">", "0", EARLY), (None, "0", EARLY)],
)
def test_censored_below_counts_as_undetectable(comparator: str | None, value: str, status: str) -> None:
    rows = [sample(7, value, comparator), sample(20, "3")]
    if comparator in (">", ">="):
        rows = [sample(7, "0"), sample(20, value, comparator)]
    result = bcell_status(rows, as_of_day=20, params=CONFIRM_OFF)
    assert (result.status, result.first_regeneration_day) == (status, 20)


def test_censored_above_counts_as_detectable_even_at_a_higher_threshold() -> None:
    params = SiteParams(bcell_threshold=Decimal(5), confirm_regeneration=False)
    result = bcell_status([sample(7, "2"), sample(20, "1", ">")], as_of_day=20, params=params)
    assert result.status == EARLY


@pytest.mark.parametrize(("value", "status"), [("5", APLASIA), ("5.000001", EARLY)])
def test_threshold_tau_detectable_means_strictly_above(value: str, status: str) -> None:
    params = SiteParams(bcell_threshold=Decimal(5), confirm_regeneration=False)
    result = bcell_status([sample(7, "3"), sample(20, value)], as_of_day=20, params=params)
    assert result.status == status


def test_window_w_is_a_site_parameter() -> None:
    params = SiteParams(regeneration_window_days=30, confirm_regeneration=False)
    rows = samples((7, "0"), (30, "0"), (31, "1"))
    assert bcell_status(rows, as_of_day=31, params=params).status == LATE


def test_samples_are_ordered_by_collection_time_within_a_day() -> None:
    rows = [sample(35, "4", hour=18), sample(35, "0", hour=6), sample(7, "0")]
    # 06:00 undetectable, then 18:00 detectable: a suspicion, not a refuted one.
    assert bcell_status(rows, as_of_day=35, params=CONFIRM_ON).status == REGENERATION_SUSPECTED


def test_established_regeneration_stands_after_a_later_undetectable_sample() -> None:
    rows = samples((7, "0"), (35, "4"), (42, "6"), (60, "0"))
    result = bcell_status(rows, as_of_day=60, params=CONFIRM_ON)
    assert (result.status, result.first_regeneration_day) == (EARLY, 35)


def test_samples_after_hsct_are_ignored_before_the_hsct_day_status() -> None:
    rows = samples((7, "0"), (40, "5"))
    assert bcell_status(rows, as_of_day=29, params=CONFIRM_OFF, hsct_day=30).status == APLASIA
    assert bcell_status(rows, as_of_day=30, params=CONFIRM_OFF, hsct_day=30).status == AFTER_HSCT


def test_status_by_day_follows_the_trajectory() -> None:
    rows = samples((7, "0"), (35, "4"), (42, "6"))
    statuses = bcell_status_by_day(rows, days=[0, 7, 34, 35, 41, 42, 90], params=CONFIRM_ON)
    assert {d: r.status for d, r in statuses.items()} == {
        0: NOT_ASSESSED,
        7: APLASIA,
        34: APLASIA,
        35: REGENERATION_SUSPECTED,
        41: REGENERATION_SUSPECTED,
        42: EARLY,
        90: EARLY,
    }


def test_caveat_and_evidence_wording() -> None:
    assert "CD19-negative relapse" in APLASIA_CAVEAT
    assert EARLY_REGENERATION_EVIDENCE.startswith(
        "In one retrospective study (55 patients treated, 45 of them in CR)"
    )
    assert EARLY_REGENERATION_EVIDENCE.endswith("This is not a treatment recommendation.")


_SAMPLE = st.tuples(
    st.integers(min_value=-2, max_value=80),
    st.sampled_from(["0", "1", "3", "12"]),
    st.sampled_from([None, None, None, "<", ">"]),
    st.integers(min_value=0, max_value=23),
)


@given(
    rows=st.lists(_SAMPLE, max_size=12),
    confirm=st.booleans(),
    hsct=st.one_of(st.none(), st.integers(min_value=1, max_value=80)),
)
def test_status_by_day_equals_status_per_day(
    rows: list[tuple[int, str, str | None, int]], confirm: bool, hsct: int | None
) -> None:
    labs = [sample(day, value, comparator, hour) for day, value, comparator, hour in rows]
    params = SiteParams(confirm_regeneration=confirm)
    days = range(-1, 82, 3)
    by_day = bcell_status_by_day(labs, days=days, params=params, hsct_day=hsct)
    for day in days:
        assert by_day[day] == bcell_status(labs, as_of_day=day, params=params, hsct_day=hsct)
