"""Messages the rules produce: an English template with named placeholders, and its values.

The rules import no Django, so they cannot translate. Each template is marked with
``gettext_noop`` below, a local identity function that ``makemessages`` extracts by its
name; the Django side translates the template, and any nested message, when it shows
the text (``scoring.i18n.localize``). ``str()`` gives the English text, which logs,
commands and the stored audit trail use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeAlias

ParamValue: TypeAlias = "str | int | Decimal | Message"


def gettext_noop(message: str) -> str:
    """Mark ``message`` for translation and return it unchanged (as Django's does)."""
    return message


def _identity(text: str) -> str:
    return text


@dataclass(frozen=True, eq=True)
class Message:
    """A translatable text: ``template % params``, each nested Message rendered first."""

    template: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.template, tuple(sorted((k, str(v)) for k, v in self.params.items()))))

    def render(self, translate: Callable[[str], str] = _identity) -> str:
        """The text in the language ``translate`` gives; English by default."""
        text = translate(self.template)
        if not self.params:
            return text
        values = {
            key: value.render(translate) if isinstance(value, Message) else value
            for key, value in self.params.items()
        }
        return text % values

    def __str__(self) -> str:
        return self.render()


def join(parts: list[Message], separator: str = ", ") -> Message:
    """One message listing ``parts`` (each translated on its own) with ``separator``."""
    params: dict[str, ParamValue] = {f"p{i}": part for i, part in enumerate(parts)}
    template = separator.replace("%", "%%").join(f"%(p{i})s" for i in range(len(parts)))
    return Message(template, params)


class RuleError(ValueError):
    """A rule refused its input; ``message`` says why, in a translatable form."""

    def __init__(self, message: Message) -> None:
        super().__init__(str(message))
        self.message = message
