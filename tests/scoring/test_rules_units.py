"""Tests of scoring.rules.units: accepted units, conversions, ranges, LOINC (SPEC 2.2)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.rules.units import (
    ANALYTES,
    CANONICAL_PLACES,
    HS_CRP_LOINC,
    Analyte,
    AnalyteError,
    RangeError,
    UnitError,
    ValueFormatError,
    check_range,
    from_canonical,
    is_tenfold_jump,
    loinc_for,
    normalise_unit,
    parse_value,
    resolve_analyte,
    to_canonical,
    unit_conversion_message,
    unit_differs,
)

D = Decimal

# Every accepted unit of the SPEC 2.2 table, with the factor to canonical, plus UCUM spellings.
ACCEPTED_UNITS = [
    ("crp", "mg/L", D("12.5"), D("12.5")),
    ("crp", "mg/dL", D("12.5"), D("125")),
    ("crp", "", D("12.5"), D("12.5")),
    ("ferritin", "µg/L", D("800"), D("800")),
    ("ferritin", "μg/L", D("800"), D("800")),
    ("ferritin", "ug/L", D("800"), D("800")),
    ("ferritin", "ng/mL", D("800"), D("800")),
    ("ferritin", "pmol/L", D("2247"), D("1000")),
    ("ferritin", "pmol/l", D("1"), D("0.445038")),
    ("il6", "pg/mL", D("42"), D("42")),
    ("il6", "ng/L", D("42"), D("42")),
    ("aptt", "s", D("36.4"), D("36.4")),
    ("aptt", "S", D("36.4"), D("36.4")),
    ("anc", "10^9/L", D("1.2"), D("1.2")),
    ("anc", "x10^9/L", D("1.2"), D("1.2")),
    ("anc", "×10^9/L", D("1.2"), D("1.2")),
    ("anc", "x 10^9 /L", D("1.2"), D("1.2")),
    ("anc", "10*9/L", D("1.2"), D("1.2")),
    ("anc", "10^3/µL", D("1.2"), D("1.2")),
    ("anc", "10^3/μL", D("1.2"), D("1.2")),
    ("anc", "10*3/uL", D("1.2"), D("1.2")),
    ("anc", "cells/µL", D("1200"), D("1.2")),
    ("anc", "cells/uL", D("450"), D("0.45")),
    ("anc", "/µL", D("1200"), D("1.2")),
    ("anc", "/uL", D("1200"), D("1.2")),
    ("platelets", "10^9/L", D("60"), D("60")),
    ("platelets", "10*9/L", D("60"), D("60")),
    ("platelets", "10^3/µL", D("60"), D("60")),
    ("platelets", "10*3/uL", D("60"), D("60")),
    ("ldh", "U/L", D("300"), D("300")),
    ("ldh", "u/l", D("300"), D("300")),
    ("bcell", "cells/µL", D("4"), D("4")),
    ("bcell", "/µL", D("4"), D("4")),
    ("bcell", "/uL", D("4"), D("4")),
    ("bcell", "10^9/L", D("0.004"), D("4")),
    ("bcell", "10*9/L", D("0.004"), D("4")),
    ("bcell", "10^3/µL", D("0.004"), D("4")),
    ("bcell", "10*3/uL", D("0.004"), D("4")),
]


@pytest.mark.parametrize(("analyte", "unit", "value", "canonical"), ACCEPTED_UNITS)
def test_every_accepted_unit_converts_to_canonical(
    analyte: str, unit: str, value: Decimal, canonical: Decimal
) -> None:
    assert to_canonical(analyte, value, unit) == canonical


@pytest.mark.parametrize("analyte", list(ANALYTES))
def test_every_display_unit_of_every_analyte_is_accepted(analyte: str) -> None:
    for unit in ANALYTES[analyte].accepted_units:
        to_canonical(analyte, D(1), unit)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("µg/L", "ug/l"),  # micro sign U+00B5
        ("μg/L", "ug/l"),  # Greek mu U+03BC
        ("ug/L", "ug/l"),
        ("UG/L", "ug/l"),
        ("x10^9/L", "10^9/l"),
        ("×10^9/L", "10^9/l"),
        ("10*9/L", "10^9/l"),
        ("10*3/uL", "10^3/ul"),
        ("10^3/µL", "10^3/ul"),
        ("10⁹/L", "10^9/l"),
        (" mg / dL ", "mg/dl"),
        ("ｍｇ/Ｌ", "mg/l"),  # full-width, folded by NFKC
        ("", ""),
    ],
)
def test_normalise_unit_folds_case_micro_and_ucum(text: str, key: str) -> None:
    assert normalise_unit(text) == key


def test_canonical_values_are_rounded_to_six_places_half_even() -> None:
    assert to_canonical("crp", D("1.0000005"), "mg/L") == D("1.000000")
    assert to_canonical("crp", D("1.0000015"), "mg/L") == D("1.000002")
    assert to_canonical("crp", D("3"), "mg/L").as_tuple().exponent == -CANONICAL_PLACES


@pytest.mark.parametrize(
    ("analyte", "unit", "listed"),
    [
        ("crp", "mmol/L", "accepted: mg/L, mg/dL"),
        ("ferritin", "mg/L", "accepted: µg/L, ng/mL, pmol/L"),
        ("aptt", "min", "accepted: s"),
        ("anc", "%", "accepted: 10^9/L, 10^3/µL, cells/µL, /µL"),
        ("bcell", "%", "accepted: cells/µL, /µL, 10^9/L, 10^3/µL"),
    ],
)
def test_rejected_unit_message_lists_accepted_units(analyte: str, unit: str, listed: str) -> None:
    with pytest.raises(UnitError) as info:
        to_canonical(analyte, D(1), unit)
    message = str(info.value)
    assert f"unit '{unit}' is not accepted for" in message
    assert message.endswith(listed)


def test_crp_mmol_message_is_exact() -> None:
    with pytest.raises(UnitError, match=r"^unit 'mmol/L' is not accepted for CRP; accepted: mg/L, mg/dL$"):
        to_canonical("crp", D(1), "mmol/L")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("crp", Analyte.CRP),
        ("CRP", Analyte.CRP),
        (" Ferritin ", Analyte.FERRITIN),
        ("1988-5", Analyte.CRP),
        ("2276-4", Analyte.FERRITIN),
        ("14723-1", Analyte.FERRITIN),
        ("26881-3", Analyte.IL6),
        ("14979-9", Analyte.APTT),
        ("3173-2", Analyte.APTT),
        ("751-8", Analyte.ANC),
        ("753-4", Analyte.ANC),
        ("26499-4", Analyte.ANC),
        ("777-3", Analyte.PLATELETS),
        ("26515-7", Analyte.PLATELETS),
        ("2532-0", Analyte.LDH),
        ("8116-6", Analyte.BCELL),
    ],
)
def test_resolve_analyte_accepts_codes_and_loinc(code: str, expected: Analyte) -> None:
    assert resolve_analyte(code).code == expected


def test_high_sensitivity_crp_loinc_is_refused_as_a_different_test() -> None:
    with pytest.raises(AnalyteError, match="high-sensitivity CRP, a different test") as info:
        resolve_analyte(HS_CRP_LOINC)
    assert "1988-5" in str(info.value)


def test_unknown_analyte_lists_accepted_codes() -> None:
    with pytest.raises(
        AnalyteError, match="accepted codes: crp, ferritin, il6, aptt, anc, platelets, ldh, bcell"
    ):
        resolve_analyte("sodium")


def test_analytes_are_in_table_order_with_first_loinc() -> None:
    assert list(ANALYTES) == ["crp", "ferritin", "il6", "aptt", "anc", "platelets", "ldh", "bcell"]
    assert loinc_for("ferritin") == "2276-4"
    assert loinc_for("anc") == "751-8"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("12.5", (None, D("12.5"))),
        (" 200 ", (None, D("200"))),
        ("<1", ("<", D("1"))),
        ("< 1", ("<", D("1"))),
        ("<=0.5", ("<=", D("0.5"))),
        (">180", (">", D("180"))),
        (">= 180", (">=", D("180"))),
        ("≥ 180", (">=", D("180"))),
        ("≤1", ("<=", D("1"))),
        (".5", (None, D("0.5"))),
        ("5.", (None, D("5"))),
        ("-3", (None, D("-3"))),
    ],
)
def test_parse_value_reads_comparator_and_decimal(text: str, parsed: tuple[str | None, Decimal]) -> None:
    assert parse_value(text) == parsed


def test_parse_value_refuses_decimal_comma() -> None:
    with pytest.raises(ValueFormatError, match="use a decimal point"):
        parse_value("12,5")


@pytest.mark.parametrize(
    "text", ["", "  ", "NaN", "nan", "inf", "Infinity", "-inf", "1e5", "1E-3", "abc", "<", "5 mg"]
)
def test_parse_value_refuses_non_numbers(text: str) -> None:
    with pytest.raises(ValueFormatError):
        parse_value(text)


def test_negative_value_parses_but_range_check_refuses_it() -> None:
    _, value = parse_value("-1")
    with pytest.raises(RangeError):
        check_range("crp", value)


@pytest.mark.parametrize(
    ("analyte", "low", "high"),
    [
        ("crp", "0", "1000"),
        ("ferritin", "0", "2000000"),
        ("il6", "0", "200000"),
        ("aptt", "10", "300"),
        ("anc", "0", "100"),
        ("platelets", "0", "2000"),
        ("ldh", "0", "50000"),
        ("bcell", "0", "500000"),
    ],
)
def test_reject_range_limits_are_inclusive(analyte: str, low: str, high: str) -> None:
    check_range(analyte, D(low))
    check_range(analyte, D(high))
    with pytest.raises(RangeError, match="outside the accepted range"):
        check_range(analyte, D(low) - D("0.000001"))
    with pytest.raises(RangeError, match="outside the accepted range"):
        check_range(analyte, D(high) + D("0.000001"))


def test_range_message_names_analyte_value_unit_and_range() -> None:
    with pytest.raises(RangeError, match=r"^CRP 1200 mg/L is outside the accepted range 0–1000 mg/L$"):
        check_range("crp", D("1200.000000"))


@pytest.mark.parametrize(
    ("analyte", "inside", "outside"),
    [
        ("crp", "500", "500.000001"),
        ("ferritin", "100000", "100001"),
        ("il6", "50000", "50001"),
        ("aptt", "150", "150.1"),
        ("aptt", "15", "14.9"),
        ("anc", "50", "50.1"),
        ("platelets", "1500", "1501"),
        ("ldh", "10000", "10001"),
        ("bcell", "3000", "3001"),
    ],
)
def test_values_outside_warn_range_are_stored_with_a_warning(analyte: str, inside: str, outside: str) -> None:
    assert check_range(analyte, D(inside)) == []
    warnings = check_range(analyte, D(outside))
    assert len(warnings) == 1
    assert "outside the usual range" in str(warnings[0])


@pytest.mark.parametrize(
    ("previous", "new", "jump"),
    [
        (None, D("100"), False),
        (D("0"), D("100"), False),
        (D("10"), D("99.999999"), False),
        (D("10"), D("100"), True),
        (D("100"), D("10.000001"), False),
        (D("100"), D("10"), True),
        (D("5"), D("0"), True),  # a drop to zero is an infinite ratio
        (D("5"), D("5"), False),
    ],
)
def test_tenfold_jump_is_flagged_when_previous_positive(
    previous: Decimal | None, new: Decimal, jump: bool
) -> None:
    assert is_tenfold_jump(previous, new) is jump


_UNITS = [(a, u) for a, spec in ANALYTES.items() for u in spec.accepted_units]


@given(
    unit=st.sampled_from(_UNITS),
    value=st.decimals(min_value=D("0.001"), max_value=D("100000"), places=3, allow_nan=False),
)
def test_unit_round_trip_is_within_one_millionth_relative(unit: tuple[str, str], value: Decimal) -> None:
    analyte, name = unit
    canonical = to_canonical(analyte, value, name)
    back = from_canonical(analyte, canonical, name)
    # Stored canonical values have 6 dp; the round trip is exact up to that rounding.
    tolerance = max(value * D("1e-6"), from_canonical(analyte, D("0.0000005"), name))
    assert abs(back - value) <= tolerance


def test_range_messages_keep_the_comparator_and_the_value_as_typed() -> None:
    (warning,) = check_range("aptt", D("180"), comparator=">")
    assert str(warning).startswith("APTT >180 s is outside the usual range")
    with pytest.raises(RangeError) as caught:
        check_range("crp", D("2500"), entered="250 mg/dL")
    assert str(caught.value).startswith("CRP 250 mg/dL (2500 mg/L) is outside the accepted range 0–1000 mg/L")


# --- issue 8: exponent switch, unit conversion against the usual unit -------------------------


@pytest.mark.parametrize("text", ["1e5", "1.107e+04", "6.5E-06", "<1e3"])
def test_parse_value_refuses_exponent_by_default_and_says_what_to_write(text: str) -> None:
    with pytest.raises(ValueFormatError, match="has an exponent, which is not accepted here") as exc:
        parse_value(text)
    assert "decimal point" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1.107e+04", (None, D("11070"))),
        ("6.5E-06", (None, D("0.0000065"))),
        (">=5e3", (">=", D("5000"))),
        ("12.5", (None, D("12.5"))),
    ],
)
def test_parse_value_reads_exponent_when_allowed(text: str, parsed: tuple[str | None, Decimal]) -> None:
    comparator, value = parse_value(text, allow_exponent=True)
    assert (comparator, value) == parsed
    assert "E" not in str(value)  # stored and shown in plain notation


@pytest.mark.parametrize("allow", [True, False])
@pytest.mark.parametrize("text", ["0,5", "3,5", "twelve", "NaN", "inf", "1e"])
def test_parse_value_refuses_commas_and_words_either_way(text: str, allow: bool) -> None:
    with pytest.raises(ValueFormatError):
        parse_value(text, allow_exponent=allow)


def test_not_a_number_message_does_not_claim_exponents_are_refused_when_they_are_accepted() -> None:
    with pytest.raises(ValueFormatError) as exc:
        parse_value("twelve", allow_exponent=True)
    assert "1.2e4" in str(exc.value)
    with pytest.raises(ValueFormatError) as exc:
        parse_value("twelve")
    assert "exponent" not in str(exc.value)


@pytest.mark.parametrize(
    ("analyte", "unit", "usual", "differs"),
    [
        ("crp", "mg/dL", "mg/L", True),
        ("crp", "mg/L", "mg/L", False),
        ("crp", "", "mg/L", False),
        ("crp", "mg/L", "mg/dL", True),
        ("ferritin", "ng/mL", "µg/L", False),
        ("ferritin", "pmol/L", "µg/L", True),
        ("il6", "ng/L", "pg/mL", False),
        ("anc", "10^3/µL", "10^9/L", False),
        ("anc", "cells/µL", "10^9/L", True),
        ("anc", "/uL", "cells/µL", False),
        ("bcell", "10^9/L", "cells/µL", True),
    ],
)
def test_unit_differs_when_the_factor_between_the_units_is_not_one(
    analyte: str, unit: str, usual: str, differs: bool
) -> None:
    assert unit_differs(analyte, unit, usual) is differs


def test_unit_conversion_message_shows_the_value_as_typed_and_as_converted() -> None:
    message = unit_conversion_message(
        "crp", entered="25", unit="mg/dl", canonical=D("250"), usual_unit="mg/L"
    )
    assert str(message) == "CRP 25 mg/dL is 250 mg/L: it was given in mg/dL, not in the usual mg/L"
