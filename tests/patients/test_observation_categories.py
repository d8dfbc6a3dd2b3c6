"""The bedside rules' categories are the stored choices, and the form keys a refusal to the flow."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from patients import forms
from patients.models import Hypotension, Oxygen
from scoring.rules import bedside

pytestmark = pytest.mark.nodb


def test_rule_categories_are_the_stored_choices() -> None:
    assert set(bedside.DEVICE_CATEGORY.values()) | {bedside.OXYGEN_HIGH_FLOW} == set(Oxygen.values)
    assert {
        bedside.HYPOTENSION_NONE,
        bedside.HYPOTENSION_NO_VASOPRESSOR,
        bedside.HYPOTENSION_ONE_VASOPRESSOR,
        bedside.HYPOTENSION_MULTIPLE_VASOPRESSORS,
    } == set(Hypotension.values)


def test_form_devices_are_the_rule_devices() -> None:
    devices = {code for code, _label in forms.OXYGEN_DEVICES}
    assert devices == set(bedside.DEVICE_CATEGORY) | {bedside.NASAL_CANNULA}


def test_the_form_keys_the_rule_refusal_to_the_flow_field() -> None:
    with pytest.raises(ValidationError) as caught:
        forms.oxygen_category("nasal_cannula", None)
    assert list(caught.value.message_dict) == ["oxygen_flow"]
    with pytest.raises(ValidationError) as caught:
        forms.oxygen_category("cpap", Decimal("4"))
    assert "only for a nasal cannula" in caught.value.message_dict["oxygen_flow"][0]
