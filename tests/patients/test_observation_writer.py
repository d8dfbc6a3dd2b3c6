"""The observation writer itself refuses a slip that a caller did not catch (SPEC 9: Tmax keeps
its one decimal and refuses more; a slip is never turned silently into another number)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from patients.services import validate_observation


@pytest.mark.parametrize("typed", ["38.55", Decimal("38.55"), "38.04", 38.25])
def test_a_tmax_with_more_than_one_decimal_is_refused_not_rounded(typed):
    with pytest.raises(ValidationError) as refused:
        validate_observation({"tmax_c": typed})
    assert "tmax_c" in refused.value.message_dict
    assert "one decimal" in refused.value.message_dict["tmax_c"][0]


@pytest.mark.parametrize(
    ("typed", "stored"), [("38.5", "38.5"), ("38.50", "38.5"), (39, "39.0"), ("3.85e1", "38.5")]
)
def test_a_tmax_with_one_decimal_or_fewer_is_kept(typed, stored):
    assert validate_observation({"tmax_c": typed})["tmax_c"] == Decimal(stored)
