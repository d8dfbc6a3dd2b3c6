"""Number fields typed as text and read by the server with the lab panel's own rules (SPEC 9).

A browser number field turns a decimal comma into another number ("0,5" arrives as "05")
and letters into an empty value. These fields are text inputs with ``inputmode="decimal"``
(a tablet still shows its number pad); ``units.parse_value`` reads them, without exponents,
and every refusal names the field and says what is accepted, keeping the text as typed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from patients.services import MrdValue
from scoring.i18n import error_text
from scoring.rules import units

MAX_CHARS = 64


class DecimalTextField(forms.CharField):
    """A decimal number typed as text: a point, no comma, no exponent, no comparator."""

    def __init__(
        self,
        *,
        min_value: Decimal | int | None = None,
        max_value: Decimal | int | None = None,
        decimal_places: int | None = None,
        unit: str = "",
        inputmode: str = "decimal",
        **kwargs: Any,
    ) -> None:
        self.min_value = None if min_value is None else Decimal(min_value)
        self.max_value = None if max_value is None else Decimal(max_value)
        self.decimal_places = decimal_places
        self.unit = unit
        kwargs.setdefault(
            "widget",
            forms.TextInput(
                attrs={"inputmode": inputmode, "autocomplete": "off", "size": 12, "maxlength": MAX_CHARS}
            ),
        )
        super().__init__(**kwargs)

    def _name(self) -> str:
        return str(self.label or _("This field"))

    def _accepted(self) -> str:
        """What the field takes, e.g. "a number from 0 to 100 %, with a decimal point, such as 12.5"."""
        if self.min_value is not None and self.max_value is not None:
            span = _("a number from %(low)s to %(high)s") % {"low": self.min_value, "high": self.max_value}
        elif self.min_value is not None:
            span = _("a number of %(low)s or more") % {"low": self.min_value}
        else:
            span = _("a number")
        if self.unit:
            span = f"{span} {self.unit}"
        return self.example_text(span)

    def example_text(self, span: str) -> str:
        return _("%(span)s, with a decimal point, such as 12.5") % {"span": span}

    def _refuse(self, reason: str) -> ValidationError:
        return ValidationError(
            _("%(field)s: %(reason)s. Accepted: %(accepted)s.")
            % {"field": self._name(), "reason": reason, "accepted": self._accepted()},
            code="invalid",
        )

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]  # a number, not text
        text = super().to_python(value)
        if not text:
            return None
        if len(text) > MAX_CHARS:
            raise self._refuse(_("more than %(max)d characters") % {"max": MAX_CHARS})
        try:
            comparator, number = units.parse_value(text, allow_exponent=False)
        except units.ValueFormatError as exc:
            raise self._refuse(error_text(exc)) from exc
        if comparator is not None:
            raise self._refuse(
                _("'%(value)s' has a comparator (<, >), which is not accepted here") % {"value": text}
            )
        return number

    def validate(self, value: Any) -> None:
        if value is None:
            super().validate("")
            return
        if (self.min_value is not None and value < self.min_value) or (
            self.max_value is not None and value > self.max_value
        ):
            raise self._refuse(
                _("%(value)s is outside the accepted range") % {"value": units.format_decimal(value)}
            )
        self.check_places(value)

    def check_places(self, value: Decimal) -> None:
        exponent = value.as_tuple().exponent
        if self.decimal_places is not None and isinstance(exponent, int) and -exponent > self.decimal_places:
            raise self._refuse(
                _("%(value)s has more than %(places)d decimal places")
                % {"value": units.format_decimal(value), "places": self.decimal_places}
            )

    def prepare_value(self, value: Any) -> Any:
        # A stored Decimal is shown plainly (never 1E+1); typed text is shown as typed.
        return units.format_decimal(value) if isinstance(value, Decimal) else value


class IntegerTextField(DecimalTextField):
    """A whole number typed as text, read by the same rules."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("inputmode", "numeric")
        super().__init__(decimal_places=0, **kwargs)

    def example_text(self, span: str) -> str:
        return _("%(span)s, a whole number such as 3") % {"span": span}

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        number = super().to_python(value)
        if number is None:
            return None
        if number != number.to_integral_value():
            raise self._refuse(_("%(value)s is not a whole number") % {"value": units.format_decimal(number)})
        return int(number)

    def validate(self, value: Any) -> None:
        super().validate(None if value is None else Decimal(value))


class MrdTextField(DecimalTextField):
    """An MRD percentage typed as text: 0.5, or <0.01 as reported below detection (issue 12).

    Read like ``DecimalTextField`` (no exponent, no comma), but a comparator is kept: the
    cleaned value is a ``services.MrdValue``, which ``services.mrd_values`` splits.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 100)
        kwargs.setdefault("decimal_places", units.MRD_PLACES)
        kwargs.setdefault("unit", "%")
        super().__init__(**kwargs)

    def example_text(self, span: str) -> str:
        return _("%(span)s, with a decimal point, such as 12.5, or <0.01 below detection") % {"span": span}

    def to_python(self, value: Any) -> Any:
        text = forms.CharField.to_python(self, value)
        if not text:
            return None
        if len(text) > MAX_CHARS:
            raise self._refuse(_("more than %(max)d characters") % {"max": MAX_CHARS})
        try:
            comparator, number = units.parse_value(text, allow_exponent=False)
        except units.ValueFormatError as exc:
            raise self._refuse(error_text(exc)) from exc
        return MrdValue(number, comparator or "")

    def validate(self, value: Any) -> None:
        super().validate(None if value is None else value.value)

    def prepare_value(self, value: Any) -> Any:
        if hasattr(value, "comparator"):
            return value.comparator + units.format_decimal(value.value)
        return super().prepare_value(value)
