"""Analytes, accepted units, conversions and plausibility ranges (SPEC 2.2)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Final

from .messages import Message, ParamValue, RuleError, gettext_noop

CANONICAL_PLACES: Final = 6  # canonical values are stored to 6 dp, SPEC 2.2
_QUANTUM: Final = Decimal(1).scaleb(-CANONICAL_PLACES)
_WORKING_PRECISION: Final = 40  # digits; ample for 2e6 with 6 dp through one division

HS_CRP_LOINC: Final = "30522-7"  # high-sensitivity CRP, a different test, refused, SPEC 2.2
TENFOLD_JUMP_RATIO: Final = Decimal(10)  # ≥10× change from previous value is flagged, SPEC 2.2

FERRITIN_PMOL_L_PER_UG_L: Final = Decimal("2.247")  # 1 µg/L ferritin = 2.247 pmol/L, SPEC 2.2


class Analyte(StrEnum):
    """Analyte codes of SPEC 2.2."""

    CRP = "crp"
    FERRITIN = "ferritin"
    IL6 = "il6"
    APTT = "aptt"
    ANC = "anc"
    PLATELETS = "platelets"
    LDH = "ldh"
    BCELL = "bcell"


class UnitError(RuleError):
    """A unit that is not accepted for the analyte."""


class RangeError(RuleError):
    """A value outside the analyte's reject range; nothing may be stored."""


class AnalyteError(RuleError):
    """An unknown or refused analyte code or LOINC."""


class ValueFormatError(RuleError):
    """A value text that is not a plain decimal number with an optional comparator."""


@dataclass(frozen=True)
class UnitFactor:
    """How one accepted unit converts to the canonical unit: value × multiply ÷ divide."""

    display: str
    multiply: Decimal = Decimal(1)
    divide: Decimal = Decimal(1)

    def to_canonical(self, value: Decimal) -> Decimal:
        """Convert an unrounded value in this unit to the canonical unit."""
        with localcontext() as ctx:
            ctx.prec = _WORKING_PRECISION
            return value * self.multiply / self.divide

    def from_canonical(self, value: Decimal) -> Decimal:
        """Convert an unrounded canonical value to this unit."""
        with localcontext() as ctx:
            ctx.prec = _WORKING_PRECISION
            return value * self.divide / self.multiply


@dataclass(frozen=True)
class AnalyteSpec:
    """One row of the SPEC 2.2 analyte table."""

    code: str
    label: str
    canonical_unit: str
    units: Mapping[str, UnitFactor] = field(hash=False)
    reject_min: Decimal
    reject_max: Decimal
    warn_min: Decimal
    warn_max: Decimal
    loinc: tuple[str, ...]
    name: str = ""

    @property
    def label_message(self) -> Message:
        """The label, translated where it is shown."""
        return Message(self.label)

    @property
    def accepted_units(self) -> tuple[str, ...]:
        """Return the accepted units in display form, canonical first."""
        return tuple(f.display for f in self.units.values())

    def unit_factor(self, unit: str) -> UnitFactor:
        """Return the conversion for a unit as entered; an empty unit is the canonical one."""
        key = normalise_unit(unit) or normalise_unit(self.canonical_unit)
        try:
            return self.units[key]
        except KeyError:
            raise UnitError(
                Message(
                    gettext_noop("unit '%(unit)s' is not accepted for %(analyte)s; accepted: %(accepted)s"),
                    {
                        "unit": unit.strip(),
                        "analyte": self.label_message,
                        "accepted": ", ".join(self.accepted_units),
                    },
                )
            ) from None


_SUPERSCRIPTS: Final = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_SUPERSCRIPT_POWER = re.compile(r"10([⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
_TIMES_PREFIX = re.compile(r"^[x×*]?(?=10\^)")
_WHITESPACE = re.compile(r"\s+")


def normalise_unit(text: str) -> str:
    """Return the matching key of a unit: NFKC, casefolded, µ/μ as u, UCUM 10*n as 10^n."""
    # Superscript powers first: NFKC would turn "10⁹" into an ambiguous "109".
    text = _SUPERSCRIPT_POWER.sub(lambda m: "10^" + m.group(1).translate(_SUPERSCRIPTS), text)
    text = unicodedata.normalize("NFKC", text).casefold()
    # NFKC maps the micro sign U+00B5 to Greek mu U+03BC; both mean micro.
    text = text.replace("\u03bc", "u").replace("\u00b5", "u")
    text = _WHITESPACE.sub("", text)
    text = text.replace("10*", "10^")  # UCUM 10*9/L is 10^9/L
    return _TIMES_PREFIX.sub("", text)


def _units(*factors: UnitFactor) -> dict[str, UnitFactor]:
    return {normalise_unit(f.display): f for f in factors}


_ONE: Final = Decimal(1)
_TEN: Final = Decimal(10)
_THOUSAND: Final = Decimal(1000)

# SPEC 2.2 table, in its order. Limits are in the canonical unit.
ANALYTES: Final[dict[str, AnalyteSpec]] = {
    Analyte.CRP: AnalyteSpec(
        code=Analyte.CRP,
        label="CRP",
        name=gettext_noop("C-reactive protein"),
        canonical_unit="mg/L",
        units=_units(UnitFactor("mg/L"), UnitFactor("mg/dL", multiply=_TEN)),
        reject_min=Decimal(0),
        reject_max=Decimal(1000),
        warn_min=Decimal(0),
        warn_max=Decimal(500),
        loinc=("1988-5",),
    ),
    Analyte.FERRITIN: AnalyteSpec(
        code=Analyte.FERRITIN,
        label=gettext_noop("Ferritin"),
        name=gettext_noop("Ferritin"),
        canonical_unit="µg/L",
        units=_units(
            UnitFactor("µg/L"),
            UnitFactor("ng/mL"),
            UnitFactor("pmol/L", divide=FERRITIN_PMOL_L_PER_UG_L),
        ),
        reject_min=Decimal(0),
        reject_max=Decimal(2_000_000),
        warn_min=Decimal(0),
        warn_max=Decimal(100_000),
        loinc=("2276-4", "14723-1"),
    ),
    Analyte.IL6: AnalyteSpec(
        code=Analyte.IL6,
        label="IL-6",
        name=gettext_noop("Interleukin-6"),
        canonical_unit="pg/mL",
        units=_units(UnitFactor("pg/mL"), UnitFactor("ng/L")),
        reject_min=Decimal(0),
        reject_max=Decimal(200_000),
        warn_min=Decimal(0),
        warn_max=Decimal(50_000),
        loinc=("26881-3",),
    ),
    Analyte.APTT: AnalyteSpec(
        code=Analyte.APTT,
        label="APTT",
        name=gettext_noop("Activated partial thromboplastin time"),
        canonical_unit="s",
        units=_units(UnitFactor("s")),
        reject_min=Decimal(10),
        reject_max=Decimal(300),
        warn_min=Decimal(15),
        warn_max=Decimal(150),
        loinc=("14979-9", "3173-2"),
    ),
    Analyte.ANC: AnalyteSpec(
        code=Analyte.ANC,
        label="ANC",
        name=gettext_noop("Absolute neutrophil count"),
        canonical_unit="10^9/L",
        units=_units(
            UnitFactor("10^9/L"),
            UnitFactor("10^3/µL"),
            UnitFactor("cells/µL", divide=_THOUSAND),
            UnitFactor("/µL", divide=_THOUSAND),
        ),
        reject_min=Decimal(0),
        reject_max=Decimal(100),
        warn_min=Decimal(0),
        warn_max=Decimal(50),
        loinc=("751-8", "753-4", "26499-4"),
    ),
    Analyte.PLATELETS: AnalyteSpec(
        code=Analyte.PLATELETS,
        label=gettext_noop("Platelets"),
        name=gettext_noop("Platelets"),
        canonical_unit="10^9/L",
        units=_units(UnitFactor("10^9/L"), UnitFactor("10^3/µL")),
        reject_min=Decimal(0),
        reject_max=Decimal(2000),
        warn_min=Decimal(0),
        warn_max=Decimal(1500),
        loinc=("777-3", "26515-7"),
    ),
    Analyte.LDH: AnalyteSpec(
        code=Analyte.LDH,
        label="LDH",
        name=gettext_noop("Lactate dehydrogenase"),
        canonical_unit="U/L",
        units=_units(UnitFactor("U/L")),
        reject_min=Decimal(0),
        reject_max=Decimal(50_000),
        warn_min=Decimal(0),
        warn_max=Decimal(10_000),
        loinc=("2532-0",),
    ),
    Analyte.BCELL: AnalyteSpec(
        code=Analyte.BCELL,
        label=gettext_noop("CD19+ B cells"),
        name=gettext_noop("Peripheral-blood CD19+ B cells, absolute"),
        canonical_unit="cells/µL",
        units=_units(
            UnitFactor("cells/µL"),
            UnitFactor("/µL"),
            UnitFactor("10^9/L", multiply=_THOUSAND),
            UnitFactor("10^3/µL", multiply=_THOUSAND),
        ),
        reject_min=Decimal(0),
        reject_max=Decimal(500_000),
        warn_min=Decimal(0),
        warn_max=Decimal(3000),
        loinc=("8116-6",),
    ),
}

_BY_LOINC: Final[dict[str, AnalyteSpec]] = {code: spec for spec in ANALYTES.values() for code in spec.loinc}


def resolve_analyte(code: str) -> AnalyteSpec:
    """Return the analyte for a code (any case) or a LOINC of the SPEC 2.2 table."""
    key = code.strip().casefold()
    if key in ANALYTES:
        return ANALYTES[key]
    if key in _BY_LOINC:
        return _BY_LOINC[key]
    if key == HS_CRP_LOINC:
        raise AnalyteError(
            Message(
                gettext_noop(
                    "LOINC %(loinc)s is high-sensitivity CRP, a different test, and is not "
                    "accepted; send standard CRP (LOINC %(crp_loinc)s)"
                ),
                {"loinc": HS_CRP_LOINC, "crp_loinc": ANALYTES[Analyte.CRP].loinc[0]},
            )
        )
    raise AnalyteError(
        Message(
            gettext_noop(
                "analyte '%(code)s' is not known; accepted codes: %(codes)s; "
                "or one of their LOINC codes: %(loincs)s"
            ),
            {"code": code.strip(), "codes": ", ".join(ANALYTES), "loincs": ", ".join(_BY_LOINC)},
        )
    )


def loinc_for(analyte: str) -> str:
    """Return the first (preferred) LOINC code of an analyte."""
    return resolve_analyte(analyte).loinc[0]


_VALUE = re.compile(r"^(?P<cmp><=|>=|<|>)?\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?P<exp>[eE][+-]?\d+)?)$")
_DECIMAL_COMMA = re.compile(r"\d,\d")
_COMPARATOR_ALIASES: Final = {"≤": "<=", "≥": ">=", "=<": "<=", "=>": ">="}


def parse_value(text: str, *, allow_exponent: bool = False) -> tuple[str | None, Decimal]:
    """Parse "12.5", "<1" or ">= 180" into (comparator, value); refuse commas, NaN and infinity.

    An exponent ("1.1e4") is read only with ``allow_exponent``; otherwise it is refused
    with a message that asks for the number written out.
    """
    stripped = unicodedata.normalize("NFKC", text).strip()
    for alias, comparator in _COMPARATOR_ALIASES.items():
        if stripped.startswith(alias):
            stripped = comparator + stripped[len(alias) :]
            break
    if not stripped:
        raise ValueFormatError(
            Message(gettext_noop("value is empty; enter a number such as 12.5, or <1 or >180"))
        )
    if _DECIMAL_COMMA.search(stripped):
        raise ValueFormatError(
            Message(
                gettext_noop(
                    "value '%(value)s' has a comma: use a decimal point (12.5), and no thousands separators"
                ),
                {"value": text.strip()},
            )
        )
    match = _VALUE.match(stripped)
    if match is None:
        template = (
            gettext_noop(
                "value '%(value)s' is not a number; enter a decimal such as 12.5 or 1.2e4, "
                "optionally after <, <=, > or >= (no NaN or infinity)"
            )
            if allow_exponent
            else gettext_noop(
                "value '%(value)s' is not a number; enter a plain decimal such as 12.5, "
                "optionally after <, <=, > or >= (no NaN or infinity)"
            )
        )
        raise ValueFormatError(Message(template, {"value": text.strip()}))
    if match.group("exp") and not allow_exponent:
        raise ValueFormatError(
            Message(
                gettext_noop(
                    "value '%(value)s' has an exponent, which is not accepted here: write the number "
                    "out with a decimal point, such as 11000 or 0.0065"
                ),
                {"value": text.strip()},
            )
        )
    try:
        value = Decimal(match.group("num"))
    except InvalidOperation:  # pragma: no cover - the pattern admits only finite decimals
        raise ValueFormatError(
            Message(gettext_noop("value '%(value)s' is not a number"), {"value": text.strip()})
        ) from None
    if match.group("exp"):
        # 1.1e4 is 11000: read it in plain notation, so stored and shown values carry no exponent.
        value = Decimal(format(value, "f"))
    return match.group("cmp"), value


def quantize_canonical(value: Decimal) -> Decimal:
    """Round a canonical value to the stored 6 decimal places (ROUND_HALF_EVEN)."""
    with localcontext() as ctx:
        ctx.prec = _WORKING_PRECISION
        return value.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)


ROUNDED_TEMPLATE: Final = gettext_noop(
    "value %(entered)s has more decimal places than are stored (%(places)d): stored rounded to %(value)s"
)


def rounding_message(entered: str, number: Decimal, places: int = CANONICAL_PLACES) -> Message | None:
    """Say that ``number`` (as given: ``entered``) is stored rounded half-even to ``places``; or None.

    Only a value with more decimal places than are stored gets it; a converted value
    (pmol/L to µg/L) is rounded too but says nothing, since no one typed those decimals.
    """
    with localcontext() as ctx:
        ctx.prec = _WORKING_PRECISION
        rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if rounded == number:
        return None
    return Message(
        ROUNDED_TEMPLATE, {"entered": entered.strip(), "places": places, "value": format_decimal(rounded)}
    )


MRD_PLACES: Final = 10  # MRD (%) is stored to 10 decimal places: NGS-MRD keeps 3 significant digits
MRD_TINY_PCT: Final = Decimal("0.0001")  # 10⁻⁶ of nucleated cells, the floor of NGS-MRD
MRD_TINY_TEMPLATE: Final = gettext_noop(
    "MRD %(value)s %% is below 0.0001 %% (10⁻⁶ of nucleated cells): check that it is a percentage "
    "and not a fraction (a fraction of 6.5E-06 is 0.00065 %%)"
)


def round_mrd(entered: str, value: Decimal) -> tuple[Decimal, list[Message]]:
    """Round an MRD percentage half-even to the stored 10 places; with the notes it deserves.

    A value with more decimals than are stored is said to be rounded; a value above 0 but
    below 0.0001 % is probably a fraction typed where a percentage was meant.
    """
    notes: list[Message] = []
    rounded_note = rounding_message(entered, value, MRD_PLACES)
    with localcontext() as ctx:
        ctx.prec = _WORKING_PRECISION
        rounded = value.quantize(Decimal(1).scaleb(-MRD_PLACES), rounding=ROUND_HALF_EVEN)
    if rounded_note is not None:
        notes.append(rounded_note)
    if Decimal(0) < value < MRD_TINY_PCT:
        notes.append(Message(MRD_TINY_TEMPLATE, {"value": entered.strip()}))
    return rounded, notes


MRD_RANGE_TEMPLATE: Final = gettext_noop("MRD is a percentage from 0 to 100, not %(value)s")


def parse_mrd(text: str, *, allow_exponent: bool = False) -> tuple[str, Decimal, list[Message]]:
    """Read an MRD percentage: "0.5", "<0.01" (below detection), or "6.5E-04" with ``allow_exponent``.

    Return (comparator or "", the value rounded to 10 places, notes); raise ValueFormatError
    or RangeError.
    """
    comparator, number = parse_value(text, allow_exponent=allow_exponent)
    if not Decimal(0) <= number <= Decimal(100):
        raise RangeError(Message(MRD_RANGE_TEMPLATE, {"value": text.strip()}))
    rounded, notes = round_mrd(text, number)
    return comparator or "", rounded, notes


def to_canonical(analyte: str, value: Decimal, unit: str) -> Decimal:
    """Convert a value in an accepted unit to the canonical unit, rounded to 6 dp."""
    factor = resolve_analyte(analyte).unit_factor(unit)
    return quantize_canonical(factor.to_canonical(value))


def from_canonical(analyte: str, value: Decimal, unit: str) -> Decimal:
    """Convert a canonical value back to an accepted unit (unrounded)."""
    return resolve_analyte(analyte).unit_factor(unit).from_canonical(value)


def format_decimal(value: Decimal) -> str:
    """Return a decimal for messages without exponent or trailing zeros, e.g. "1200"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def unit_differs(analyte: str, unit: str, usual_unit: str) -> bool:
    """True when ``unit`` converts differently from the site's usual unit (factor between them ≠ 1).

    ng/mL against µg/L is the same number, so it never differs; mg/dL against mg/L does.
    An empty unit means the canonical one.
    """
    spec = resolve_analyte(analyte)
    typed, usual = spec.unit_factor(unit), spec.unit_factor(usual_unit)
    return typed.multiply * usual.divide != usual.multiply * typed.divide


UNIT_CONVERSION_TEMPLATE: Final = gettext_noop(
    "%(analyte)s %(entered)s %(unit)s is %(value)s %(canonical_unit)s: it was given in %(unit)s, "
    "not in the usual %(usual)s"
)


def unit_conversion_message(
    analyte: str, *, entered: str, unit: str, canonical: Decimal, usual_unit: str, comparator: str = ""
) -> Message:
    """Say a value as typed and as converted, for a unit other than the site's usual one."""
    spec = resolve_analyte(analyte)
    return Message(
        UNIT_CONVERSION_TEMPLATE,
        {
            "analyte": spec.label_message,
            "entered": entered,
            "unit": spec.unit_factor(unit).display,
            "value": comparator + format_decimal(canonical),
            "canonical_unit": spec.canonical_unit,
            "usual": spec.unit_factor(usual_unit).display,
        },
    )


# The warnings a lab keeps in its flags, in English; ``WARNING_TEMPLATES`` lets a page
# show a stored flag in the reader's language.
WARN_RANGE_TEMPLATE: Final = gettext_noop(
    "%(analyte)s %(value)s %(unit)s is outside the usual range %(low)s–%(high)s %(unit)s; "
    "check the value and its unit"
)
TENFOLD_TEMPLATE: Final = gettext_noop(
    "%(analyte)s %(value)s %(unit)s differs 10-fold or more from the previous value "
    "%(previous)s %(unit)s. Check the unit (mg/dL vs mg/L, cells/µL vs 10^9/L)."
)
WARNING_TEMPLATES: Final = (WARN_RANGE_TEMPLATE, TENFOLD_TEMPLATE)


def check_range(
    analyte: str, canonical: Decimal, *, comparator: str = "", entered: str = ""
) -> list[Message]:
    """Raise RangeError outside the reject range; return warnings outside the warn range.

    ``comparator`` (a censored value such as >180) and ``entered`` (the value and unit as
    typed, when the unit was converted) make the message show what the user gave.
    """
    spec = resolve_analyte(analyte)
    params: dict[str, ParamValue] = {
        "analyte": spec.label_message,
        "value": comparator + format_decimal(canonical),
        "unit": spec.canonical_unit,
    }
    if not spec.reject_min <= canonical <= spec.reject_max:
        bounds = {"low": format_decimal(spec.reject_min), "high": format_decimal(spec.reject_max)}
        if entered:
            template = gettext_noop(
                "%(analyte)s %(entered)s (%(value)s %(unit)s) is outside the accepted range "
                "%(low)s–%(high)s %(unit)s"
            )
            raise RangeError(Message(template, params | bounds | {"entered": entered}))
        raise RangeError(
            Message(
                gettext_noop(
                    "%(analyte)s %(value)s %(unit)s is outside the accepted range %(low)s–%(high)s %(unit)s"
                ),
                params | bounds,
            )
        )
    if not spec.warn_min <= canonical <= spec.warn_max:
        return [
            Message(
                WARN_RANGE_TEMPLATE,
                params | {"low": format_decimal(spec.warn_min), "high": format_decimal(spec.warn_max)},
            )
        ]
    return []


def tenfold_warning(analyte: str, canonical: Decimal, previous: Decimal) -> Message:
    """The warning for a value ≥10× off the patient's previous one (SPEC 2.2)."""
    spec = resolve_analyte(analyte)
    return Message(
        TENFOLD_TEMPLATE,
        {
            "analyte": spec.label_message,
            "value": format_decimal(canonical),
            "previous": format_decimal(previous),
            "unit": spec.canonical_unit,
        },
    )


def is_tenfold_jump(previous: Decimal | None, new: Decimal) -> bool:
    """Return True when a value differs ≥10× from a previous value > 0 (a drop to 0 counts)."""
    if previous is None or previous <= 0:
        return False
    if new <= 0:
        # An infinite ratio: a drop to zero is also the classic unit-slip signature.
        return True
    return new / previous >= TENFOLD_JUMP_RATIO or previous / new >= TENFOLD_JUMP_RATIO
