"""Translatable rule messages: templates with named placeholders, rendered in any language."""

from __future__ import annotations

import pytest

from scoring.rules.alerts import ALERT_KINDS, alert_message
from scoring.rules.messages import Message, RuleError, join
from scoring.rules.units import UnitError, resolve_analyte


def test_message_renders_english_by_default_and_translates_nested_messages() -> None:
    inner = Message("Ferritin")
    msg = Message("%(analyte)s is high on day %(day)s", {"analyte": inner, "day": "+7"})
    assert str(msg) == "Ferritin is high on day +7"
    translated = msg.render(
        lambda t: {
            "Ferritin": "铁蛋白",
            "%(analyte)s is high on day %(day)s": "第 %(day)s 天 %(analyte)s 偏高",
        }.get(t, t)
    )
    assert translated == "第 +7 天 铁蛋白 偏高"


def test_a_template_without_parameters_keeps_its_percent_signs() -> None:
    assert str(Message("Baseline MRD ≥ 5 %")) == "Baseline MRD ≥ 5 %"


def test_join_translates_each_part() -> None:
    joined = join([Message("CRP"), Message("Ferritin")])
    assert str(joined) == "CRP, Ferritin"
    assert joined.render(lambda t: {"Ferritin": "铁蛋白"}.get(t, t)) == "CRP, 铁蛋白"


def test_rule_errors_read_in_english_and_carry_the_translatable_message() -> None:
    with pytest.raises(UnitError) as caught:
        resolve_analyte("crp").unit_factor("mmol/L")
    assert isinstance(caught.value, RuleError)
    assert str(caught.value) == "unit 'mmol/L' is not accepted for CRP; accepted: mg/L, mg/dL"
    assert caught.value.message.template.startswith("unit '%(unit)s'")


@pytest.mark.parametrize("kind", ALERT_KINDS)
def test_every_alert_kind_has_a_text_with_its_day(kind: str) -> None:
    params = {"points": 5, "max_points": 7, "model": "m", "grade": 3, "overridden": 0}
    text = str(alert_message(kind, 12, params))
    assert "+12" in text or kind == "day7_high"
    assert "%(" not in text


def test_unknown_alert_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not known"):
        alert_message("no_such_kind", 1, {})
