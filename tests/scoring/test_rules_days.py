"""Tests of scoring.rules.days: local dates, days after infusion, the storable range."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scoring.rules.days import (
    MAX_DAY,
    MIN_DAY,
    check_day_in_range,
    day_of,
    day_of_date,
    format_day,
    local_date,
    localize,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
INFUSION = date(2025, 3, 1)


def test_sample_at_0130_in_shanghai_lands_on_next_day_than_in_utc() -> None:
    ts = datetime(2025, 3, 1, 17, 30, tzinfo=UTC)
    assert local_date(ts, SHANGHAI) == date(2025, 3, 2)
    assert local_date(ts, UTC) == date(2025, 3, 1)
    assert day_of(ts, SHANGHAI, INFUSION) == 1
    assert day_of(ts, UTC, INFUSION) == 0


def test_evening_sample_in_new_york_is_previous_day_than_in_utc() -> None:
    ts = datetime(2025, 3, 2, 3, 0, tzinfo=UTC)
    assert day_of(ts, NEW_YORK, INFUSION) == 0
    assert day_of(ts, UTC, INFUSION) == 1


def test_local_date_refuses_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        local_date(datetime(2025, 3, 1, 8, 0), UTC)  # noqa: DTZ001


@pytest.mark.parametrize(
    ("d", "expected"),
    [(date(2025, 3, 1), 0), (date(2025, 2, 26), -3), (date(2025, 3, 8), 7), (date(2026, 3, 1), 365)],
)
def test_day_of_date_counts_whole_days_from_infusion(d: date, expected: int) -> None:
    assert day_of_date(d, INFUSION) == expected


@pytest.mark.parametrize("day", [MIN_DAY, -1, 0, 7, MAX_DAY])
def test_days_within_storable_range_are_accepted(day: int) -> None:
    check_day_in_range(day)


@pytest.mark.parametrize(
    ("day", "shown"), [(MIN_DAY - 1, "day \u221231"), (MAX_DAY + 1, "day +731"), (800, "day +800")]
)
def test_days_outside_storable_range_are_refused_as_wrong_date_or_patient(day: int, shown: str) -> None:
    with pytest.raises(ValueError, match="probable wrong date or wrong patient") as info:
        check_day_in_range(day)
    assert shown in str(info.value)
    assert "\u221230…+730" in str(info.value)


@pytest.mark.parametrize(("day", "text"), [(7, "+7"), (0, "0"), (-3, "\u22123")])
def test_format_day_signs_days(day: int, text: str) -> None:
    assert format_day(day) == text


@pytest.mark.parametrize(
    ("local", "expected_utc"),
    [
        (datetime(2025, 3, 30, 1, 30), datetime(2025, 3, 30, 0, 30, tzinfo=UTC)),
        (datetime(2025, 3, 30, 3, 30), datetime(2025, 3, 30, 1, 30, tzinfo=UTC)),
        (datetime(2025, 10, 26, 3, 30), datetime(2025, 10, 26, 2, 30, tzinfo=UTC)),
    ],
)
def test_localize_returns_utc_for_unambiguous_local_times(local, expected_utc):
    result = localize(local, ZoneInfo("Europe/Berlin"))
    assert result == expected_utc
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("local", "problem"),
    [
        (datetime(2025, 3, 30, 2, 30), "does not exist"),  # spring-forward gap
        (datetime(2025, 10, 26, 2, 30), "occurs twice"),  # autumn fold
    ],
)
def test_localize_refuses_daylight_saving_gaps_and_folds(local, problem):
    with pytest.raises(ValueError, match=problem):
        localize(local, ZoneInfo("Europe/Berlin"))
