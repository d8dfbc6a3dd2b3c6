"""Calendar days after infusion in the site time zone (SPEC 1); no clock reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Final

from .messages import Message, RuleError, gettext_noop

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


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """Attach the site zone to a naive local time and return it in UTC.

    A local time that does not exist (the spring-forward gap) or occurs twice (the
    autumn fold) is refused: the sample's instant would be a guess, so the user must
    give an explicit UTC offset. Returning UTC makes equal instants compare equal.
    """
    if naive.tzinfo is not None:
        raise ValueError(f"{naive.isoformat()} already has a time zone")
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        roundtrip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        template = (
            gettext_noop(
                "local time %(time)s does not exist (clocks jump forward) in the site time zone %(zone)s; "
                "give the time with its UTC offset, e.g. 2025-10-26T02:30+01:00"
            )
            if roundtrip != naive
            else gettext_noop(
                "local time %(time)s occurs twice in the site time zone %(zone)s; "
                "give the time with its UTC offset, e.g. 2025-10-26T02:30+01:00"
            )
        )
        raise RuleError(Message(template, {"time": naive.isoformat(sep=" "), "zone": str(tz)}))
    return first.astimezone(UTC)
