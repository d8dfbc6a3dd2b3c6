"""Show the rules' messages in the active language (the rules themselves cannot translate)."""

from __future__ import annotations

import re

from django.utils.translation import gettext

from scoring.rules.messages import Message, RuleError
from scoring.rules.units import ANALYTES, WARNING_TEMPLATES


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


def _template_pattern(template: str) -> re.Pattern[str]:
    """A pattern matching ``template``'s English text, capturing each placeholder by name."""
    out, seen = [], set()
    for part in re.split(r"(%\(\w+\)s)", template.replace("%%", "%")):
        name = re.fullmatch(r"%\((\w+)\)s", part)
        if name is None:
            out.append(re.escape(part))
        elif name.group(1) in seen:
            out.append(f"(?P={name.group(1)})")
        else:
            seen.add(name.group(1))
            out.append(f"(?P<{name.group(1)}>.+?)")
    return re.compile("".join(out))


_WARNING_PATTERNS = [(t, _template_pattern(t)) for t in WARNING_TEMPLATES]


def stored_warning_text(text: str) -> str:
    """A lab's stored warning flag (English, as entered) in the active language."""
    for template, pattern in _WARNING_PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            params = dict(match.groupdict())
            return localize(Message(template, {**params, "analyte": Message(params["analyte"])}))
    return text
