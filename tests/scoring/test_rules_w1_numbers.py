"""Issue 12 items 1 and 3, the pure rules: rounding notes, MRD parsing, MRD below detection (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from scoring.rules import units
from scoring.rules.score import PROVISIONAL_V0, day7_score, running_score

D = Decimal


def test_a_value_with_more_places_than_stored_is_rounded_half_even_with_a_note() -> None:
    message = units.rounding_message("12.3456785", D("12.3456785"))
    assert message is not None
    assert str(message) == (
        "value 12.3456785 has more decimal places than are stored (6): stored rounded to 12.345678"
    )
    assert units.quantize_canonical(D("12.3456785")) == D("12.345678")  # half-even: 8 stays


@pytest.mark.parametrize("text", ["12.345678", "12.5", "11070", "12.3456780000"])
def test_a_value_that_fits_gets_no_note(text: str) -> None:
    assert units.rounding_message(text, D(text)) is None


def test_exponents_are_read_when_allowed_and_stay_refused_otherwise() -> None:
    assert units.parse_value("1.107e+04", allow_exponent=True) == (None, D("11070"))
    with pytest.raises(units.ValueFormatError, match="has an exponent"):
        units.parse_value("1.107e+04")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NaN", "is not a number"),
        ("inf", "is not a number"),
        ("0,5", "has a comma"),
        ("1,107", "has a comma"),
    ],
)
def test_nan_infinity_and_commas_stay_refused_with_exponents_allowed(text: str, message: str) -> None:
    with pytest.raises(units.ValueFormatError, match=message):
        units.parse_mrd(text, allow_exponent=True)


def test_mrd_keeps_ten_places_and_notes_more() -> None:
    assert units.parse_mrd("0.0006495", allow_exponent=True) == ("", D("0.0006495"), [])
    comparator, value, notes = units.parse_mrd("6.49512345678E-04", allow_exponent=True)
    assert (comparator, value) == ("", D("0.0006495123"))
    assert [str(n) for n in notes] == [
        "value 6.49512345678E-04 has more decimal places than are stored (10): stored rounded to 0.0006495123"
    ]


def test_an_mrd_below_one_in_a_million_cells_is_said_to_be_maybe_a_fraction() -> None:
    _cmp, value, notes = units.parse_mrd("6.5E-06", allow_exponent=True)
    assert value == D("0.0000065")
    assert len(notes) == 1
    assert "is below 0.0001 %" in str(notes[0])
    assert "not a fraction" in str(notes[0])
    assert units.parse_mrd("0", allow_exponent=True)[2] == []  # zero is a result, not a slip
    assert units.parse_mrd("0.0001", allow_exponent=True)[2] == []


def test_mrd_below_detection_keeps_its_comparator_and_range_is_checked() -> None:
    assert units.parse_mrd("<0.01") == ("<", D("0.01"), [])
    assert units.parse_mrd("≤ 0.01") == ("<=", D("0.01"), [])
    with pytest.raises(units.RangeError, match="from 0 to 100"):
        units.parse_mrd("120")
    with pytest.raises(units.ValueFormatError, match="has an exponent"):
        units.parse_mrd("6.5E-04")  # forms: the bedside keeps refusing exponents


def _mrd_factor(baseline: str, comparator: str) -> tuple[int, bool, tuple[str, ...]]:
    result = day7_score(
        PROVISIONAL_V0,
        baseline_mrd_pct=D(baseline),
        post_ld_mrd_pct=None,
        labs=[],
        baseline_mrd_comparator=comparator,
    )
    factor = next(f for f in result.factors if f.code == "baseline_mrd")
    return factor.points, factor.missing, factor.flags


def test_mrd_below_detection_decides_its_factor_only_when_unambiguous() -> None:
    assert _mrd_factor("0.01", "<") == (0, False, ())  # < 0.01 % is below the 5 % cut: no point
    assert _mrd_factor("5", "<") == (0, False, ())  # below 5 is below the cut
    points, missing, flags = _mrd_factor("10", "<")  # 2 or 9.9: cannot decide
    assert (points, missing) == (0, True)
    assert "censored_undecided" in flags
    assert _mrd_factor("5", ">=")[:2] == (1, False)
    assert _mrd_factor("3", ">")[:2] == (0, True)


def test_running_score_treats_the_mrd_comparator_the_same() -> None:
    result = running_score(
        PROVISIONAL_V0,
        day=3,
        baseline_mrd_pct=None,
        post_ld_mrd_pct=D("10"),
        labs=[],
        post_ld_mrd_comparator="<",
    )
    factor = next(f for f in result.factors if f.code == "post_ld_mrd")
    assert (factor.missing, factor.comparator) == (True, "<")
