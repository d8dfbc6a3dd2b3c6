"""Tests of scoring.rules.measix: m-EASIX, pre-lymphodepletion and daily (SPEC 3.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from scoring.rules.measix import ADULT_CAVEAT, daily_m_easix, m_easix, pre_ld_m_easix
from scoring.rules.types import Lab

D = Decimal
INFUSION = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def lab(analyte: str, day: int, value: str, comparator: str | None = None, hour: int = 7) -> Lab:
    return Lab(analyte, day, INFUSION.replace(hour=hour) + timedelta(days=day), D(value), comparator)


def full_set(day: int, ldh: str, crp: str, platelets: str, hour: int = 7) -> list[Lab]:
    return [
        lab("ldh", day, ldh, hour=hour),
        lab("crp", day, crp, hour=hour),
        lab("platelets", day, platelets, hour=hour),
    ]


@pytest.mark.parametrize(
    ("ldh", "crp", "platelets", "expected"),
    [
        ("300", "50", "60", D("25.0")),  # SPEC §10
        ("300", "40", "100", D("12.0")),  # SPEC §10
        ("250", "0", "100", D("0")),
        ("1", "1", "3", D("0.033333")),
    ],
)
def test_m_easix_uses_crp_in_mg_dl(ldh: str, crp: str, platelets: str, expected: Decimal) -> None:
    assert m_easix(D(ldh), D(crp), D(platelets)) == expected


def test_m_easix_has_no_value_with_zero_platelets() -> None:
    assert m_easix(D(300), D(50), D(0)) is None


def test_spec_example_pre_ld_without_date_takes_latest_set_and_is_approximate() -> None:
    labs = [*full_set(-6, "280", "30", "120"), *full_set(-3, "300", "40", "100")]
    result = pre_ld_m_easix(labs, lymphodepletion_day=None)
    assert (result.value, result.day, result.approximate) == (D("12.0"), -3, True)
    assert result.inputs == {"ldh": D(300), "crp": D(40), "platelets": D(100)}
    assert result.log2 == pytest.approx(3.5849625)


def test_pre_ld_needs_all_three_on_the_same_day() -> None:
    labs = [
        *full_set(-6, "280", "30", "120"),
        lab("ldh", -3, "300"),
        lab("crp", -3, "40"),
        lab("platelets", -2, "90"),
    ]
    result = pre_ld_m_easix(labs, lymphodepletion_day=None)
    assert (result.value, result.day) == (m_easix(D(280), D(30), D(120)), -6)


def test_pre_ld_without_date_uses_days_minus_14_to_minus_1() -> None:
    labs = [*full_set(-15, "280", "30", "120"), *full_set(0, "300", "40", "100")]
    result = pre_ld_m_easix(labs, lymphodepletion_day=None)
    assert (result.value, result.reason) == (None, "missing")
    assert pre_ld_m_easix(full_set(-14, "280", "30", "120"), lymphodepletion_day=None).day == -14


@pytest.mark.parametrize(("day", "inside"), [(-13, False), (-12, True), (-8, True), (-5, True), (-4, False)])
def test_pre_ld_window_is_ld_minus_7_to_ld_inclusive(day: int, inside: bool) -> None:
    result = pre_ld_m_easix(full_set(day, "300", "50", "60"), lymphodepletion_day=-5)
    assert (result.value is not None) is inside
    assert result.approximate is False


def test_pre_ld_takes_latest_values_of_the_day() -> None:
    labs = [*full_set(-6, "300", "50", "60", hour=7), lab("crp", -6, "100", hour=15)]
    assert pre_ld_m_easix(labs, lymphodepletion_day=-5).value == D("50")


def test_daily_uses_latest_of_day_d_or_d_minus_1() -> None:
    labs = [*full_set(3, "300", "50", "60"), lab("crp", 4, "80"), lab("platelets", 5, "10")]
    result = daily_m_easix(labs, day=4)
    assert (result.value, result.day) == (D("40"), 4)
    assert daily_m_easix(labs, day=5).reason == "missing"


def test_censored_input_gives_no_value() -> None:
    labs = [lab("ldh", 2, "300"), lab("crp", 2, "5", "<"), lab("platelets", 2, "60")]
    result = daily_m_easix(labs, day=2)
    assert (result.value, result.log2, result.reason) == (None, None, "censored")


def test_zero_platelets_gives_no_value_and_zero_value_no_log2() -> None:
    assert daily_m_easix(full_set(2, "300", "50", "0"), day=2).reason == "zero_platelets"
    zero = daily_m_easix(full_set(2, "300", "0", "60"), day=2)
    assert (zero.value, zero.log2) == (D("0"), None)


def test_adult_caveat_names_the_adult_study() -> None:
    assert "adults" in ADULT_CAVEAT and "Pennisi" in ADULT_CAVEAT
