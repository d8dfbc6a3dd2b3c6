"""Template filters for clinical values."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

from scoring.i18n import stored_warning_text
from scoring.rules.days import format_day
from scoring.rules.units import format_decimal

register = template.Library()


@register.filter
def plain(value: Any) -> str:
    """A decimal without exponent or trailing zeros: 0.300000 → 0.3; None → ""."""
    if value is None or value == "":
        return ""
    try:
        return format_decimal(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return str(value)


@register.filter
def signed_day(value: Any) -> str:
    """A day after infusion, signed: +7, 0, −3."""
    if value is None or value == "":
        return ""
    return format_day(int(value))


@register.filter
def stored_warning(value: str) -> str:
    """A lab's stored warning flag (English, as entered) in the reader's language."""
    return stored_warning_text(str(value))


@register.filter
def lookup(mapping: Any, key: Any) -> Any:
    """``mapping[key]``, or None when absent: a per-row value the page looks up by date."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None
