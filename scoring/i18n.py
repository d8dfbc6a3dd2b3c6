"""Show the rules' messages in the active language (the rules themselves cannot translate)."""

from __future__ import annotations

from django.utils.translation import gettext

from scoring.rules.messages import Message, RuleError
from scoring.rules.units import ANALYTES


def localize(message: Message | str) -> str:
    """Return ``message`` in the active language; a plain string is a marked constant."""
    if isinstance(message, Message):
        return message.render(gettext)
    return gettext(message)


def error_text(exc: Exception) -> str:
    """The text of a refusal: a rule's message translated, any other error as it reads."""
    return localize(exc.message) if isinstance(exc, RuleError) else str(exc)


def analyte_label(code: str) -> str:
    """The short display name of an analyte (CRP, Ferritin, ...) in the active language."""
    return gettext(ANALYTES[code].label) if code in ANALYTES else code
