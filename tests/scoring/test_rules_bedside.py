"""Tests of scoring.rules.bedside: the ASTCT oxygen and hypotension categories, the SBP norm (SPEC 2.3)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from scoring.rules.bedside import (
    DEVICE_CATEGORY,
    FLOW_NEEDED,
    FLOW_NOT_COUNTED,
    OxygenFlowError,
    hypotension_category,
    oxygen_category,
    sbp_norm_mmhg,
)

D = Decimal


@pytest.mark.parametrize(
    ("device", "flow", "expected"),
    [
        ("none", None, "none"),
        ("nasal_cannula", D("0.5"), "low_flow"),
        ("nasal_cannula", D("6"), "low_flow"),
        ("nasal_cannula", D("6.0"), "low_flow"),
        ("nasal_cannula", D("6.1"), "high_flow"),
        ("nasal_cannula", D("15"), "high_flow"),
        ("blow_by", None, "low_flow"),
        ("facemask", None, "high_flow"),
        ("non_rebreather", None, "high_flow"),
        ("venturi", None, "high_flow"),
        ("cpap", None, "positive_pressure"),
        ("bipap", None, "positive_pressure"),
        ("intubation", None, "positive_pressure"),
    ],
)
def test_oxygen_category(device: str, flow: Decimal | None, expected: str) -> None:
    assert oxygen_category(device, flow) == expected


def test_a_nasal_cannula_without_a_flow_is_refused() -> None:
    with pytest.raises(OxygenFlowError) as caught:
        oxygen_category("nasal_cannula", None)
    assert caught.value.message.template == FLOW_NEEDED


@pytest.mark.parametrize("device", sorted(DEVICE_CATEGORY))
@pytest.mark.parametrize("flow", [D("0"), D("2"), D("8")])
def test_a_flow_with_a_device_that_ignores_it_is_refused_not_dropped(device: str, flow: Decimal) -> None:
    with pytest.raises(OxygenFlowError) as caught:
        oxygen_category(device, flow)
    assert caught.value.message.template == FLOW_NOT_COUNTED
    assert "only for a nasal cannula" in str(caught.value)


def test_an_unknown_device_is_not_turned_into_a_category() -> None:
    with pytest.raises(KeyError):
        oxygen_category("helmet", None)


@pytest.mark.parametrize(
    ("vasopressors", "vasopressin", "without", "expected"),
    [
        (0, False, False, "none"),
        (0, False, True, "no_vasopressor"),
        (0, True, False, "one_vasopressor"),
        (0, True, True, "one_vasopressor"),
        (1, False, False, "one_vasopressor"),
        (1, True, False, "one_vasopressor"),  # vasopressin is not counted among several
        (1, False, True, "one_vasopressor"),
        (2, False, False, "multiple_vasopressors"),
        (2, True, False, "multiple_vasopressors"),
        (6, False, False, "multiple_vasopressors"),
    ],
)
def test_hypotension_category(vasopressors: int, vasopressin: bool, without: bool, expected: str) -> None:
    assert hypotension_category(vasopressors, vasopressin, without) == expected


@pytest.mark.parametrize(
    ("birth", "on", "expected"),
    [
        (None, date(2025, 3, 1), None),
        (date(2024, 6, 1), date(2025, 3, 1), None),  # under one year: no norm given
        (date(2024, 3, 1), date(2025, 3, 1), (1, 72)),  # the first birthday
        (date(2024, 3, 2), date(2025, 3, 1), None),  # the day before it
        (date(2020, 6, 1), date(2025, 6, 1), (5, 80)),
        (date(2015, 6, 1), date(2025, 6, 1), (10, 90)),  # 70 + 2 × 10
        (date(2015, 6, 1), date(2026, 5, 31), (10, 90)),
        (date(2014, 6, 1), date(2025, 6, 1), (11, 90)),  # above 10: 90 mmHg
        (date(1985, 6, 1), date(2025, 6, 1), (40, 90)),
        (date(2016, 2, 29), date(2025, 3, 1), (9, 88)),  # a leap-day birthday
    ],
)
def test_sbp_norm(birth: date | None, on: date, expected: tuple[int, int] | None) -> None:
    assert sbp_norm_mmhg(birth, on) == expected
