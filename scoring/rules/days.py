"""Calendar days after infusion in the site time zone (SPEC 1); no clock reads."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Final

MIN_DAY: Final = -30  # earliest storable day, SPEC 1
MAX_DAY: Final = 730  # latest storable day, SPEC 1

_MINUS: Final = "\u2212"


def format_day(day: int) -> str:
    """Return a day signed for display, e.g. "+7", "0" or "−3" (typographic minus)."""
    if day > 0:
        return f"+{day}"
    if day < 0:
        return f"{_MINUS}{-day}"
    return "0"


def local_date(ts: datetime, tz: tzinfo) -> date:
    """Return the calendar date of an aware timestamp in the site time zone."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts.isoformat()} has no time zone; an aware datetime is required")
    return ts.astimezone(tz).date()


def day_of_date(d: date, infusion_date: date) -> int:
    """Return the day of a local calendar date relative to the infusion date (day 0)."""
    return (d - infusion_date).days


def day_of(ts: datetime, tz: tzinfo, infusion_date: date) -> int:
    """Return the day after infusion of an aware timestamp, by its local date in `tz`."""
    return day_of_date(local_date(ts, tz), infusion_date)


def check_day_in_range(day: int) -> None:
    """Raise ValueError when a day lies outside the storable range −30…+730."""
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValueError(
            f"day {format_day(day)} is outside the stored range "
            f"{format_day(MIN_DAY)}…{format_day(MAX_DAY)}: probable wrong date or wrong patient"
        )
