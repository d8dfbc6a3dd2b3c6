"""Write primitives shared by the clinical services of both apps (SPEC 1, 2, 7).

``patients.services`` and ``scoring.services`` both build on this module, which imports
neither app, so neither service module needs the other's internals and nothing imports in a
circle: the conflict and confirmation errors, save-with-history, the version and reason
checks, the site's time zone and today, and the future-date checks.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _


class ConflictError(ValidationError):
    """An edit made from a stale version (optimistic locking, SPEC 7)."""


class NeedsConfirmation(Exception):  # noqa: N818  # a state the form handles, not a failure
    """Values were plausible but unusual; the user must confirm them (SPEC 2.2)."""

    def __init__(self, warnings: dict[str, list[str]]) -> None:
        super().__init__("; ".join(w for ws in warnings.values() for w in ws))
        self.warnings = warnings


def save_with_history(obj: Any, *, user: Any, reason: str = "") -> None:
    """Save with the change history's user and reason (django-simple-history)."""
    obj._history_user = user if getattr(user, "is_authenticated", False) else None
    obj._change_reason = reason or None
    obj.save()


def check_version(obj: Any, expected_version: int | None, what: str) -> None:
    if expected_version is not None and obj.version != expected_version:
        raise ConflictError(
            _(
                "This %(what)s was changed by someone else since you opened it "
                "(you edited version %(expected)d, the record is now at version %(current)d). "
                "Nothing was saved: reload it, review the change, and try again."
            )
            % {"what": what, "expected": expected_version, "current": obj.version},
            code="conflict",
        )


def require_reason(reason: str, action: str) -> str:
    """Return the stripped reason; ``action`` (translated) completes "A reason is required to …"."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("A reason is required to %(action)s.") % {"action": action}})
    return reason


FUTURE_TOLERANCE = timedelta(minutes=15)  # clock skew between a ward device and the server


def site_zone() -> ZoneInfo:
    """The site time zone, which decides calendar days (SPEC 1)."""
    return ZoneInfo(settings.TIME_ZONE)


def site_today() -> date:
    """Today's date at the site (SPEC 1)."""
    return timezone.now().astimezone(site_zone()).date()


def check_not_future_date(day: date, field_name: str) -> None:
    """Refuse a clinical date after today: nothing is recorded for a day still to come."""
    today = site_today()
    if day > today:
        raise ValidationError(
            {
                field_name: _(
                    "%(date)s has not come yet: nothing can be recorded for a day after today (%(today)s)."
                )
                % {"date": f"{day:%Y-%m-%d}", "today": f"{today:%Y-%m-%d}"}
            }
        )


def check_not_future_time(when: datetime, field_name: str) -> None:
    """Refuse a collection time in the future (beyond a small clock skew)."""
    if when > timezone.now() + FUTURE_TOLERANCE:
        local = when.astimezone(site_zone())
        raise ValidationError(
            {
                field_name: _("The collection time %(time)s is in the future: check the date and the time.")
                % {"time": f"{local:%Y-%m-%d %H:%M}"}
            }
        )
