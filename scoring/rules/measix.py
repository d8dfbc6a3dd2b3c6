"""m-EASIX companion score, pre-lymphodepletion and daily (SPEC 3.4)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from .labindex import LabIndex, lab_index
from .messages import gettext_noop
from .types import Lab
from .units import Analyte, quantize_canonical

CRP_MG_L_PER_MG_DL: Final = Decimal(10)  # m-EASIX uses CRP in mg/dL, SPEC 3.4
PRE_LD_WINDOW_DAYS: Final = 7  # days ld−7…ld inclusive, SPEC 3.4 (Pennisi et al. 2021)
APPROX_WINDOW_FIRST_DAY: Final = -14  # without an LD date: days −14…−1, SPEC 3.4
APPROX_WINDOW_LAST_DAY: Final = -1
MEASIX_ANALYTES: Final = (Analyte.LDH.value, Analyte.CRP.value, Analyte.PLATELETS.value)

ADULT_CAVEAT: Final = gettext_noop(
    "m-EASIX was studied before lymphodepletion in adults (Pennisi et al., Blood Adv 2021; "
    "AUC about 0.80 for severe CRS). It is not validated in children."
)
DAILY_CAVEAT: Final = gettext_noop("trend: daily m-EASIX after infusion is not validated")
APPROXIMATE_TIMING_LABEL: Final = gettext_noop("approximate timing")

REASON_MISSING: Final = "missing"
REASON_CENSORED: Final = "censored"
REASON_ZERO_PLATELETS: Final = "zero_platelets"


@dataclass(frozen=True)
class MEasixResult:
    """An m-EASIX value with its log2, day, timing label and the inputs it used."""

    value: Decimal | None
    log2: float | None
    day: int | None
    approximate: bool
    inputs: dict[str, Decimal] = field(hash=False)
    reason: str = ""  # why there is no value: missing, censored or zero_platelets


def m_easix(ldh_u_l: Decimal, crp_mg_l: Decimal, platelets_10e9_l: Decimal) -> Decimal | None:
    """Return LDH × CRP (mg/dL) / platelets to 6 dp, or None when platelets are 0."""
    if platelets_10e9_l <= 0:
        return None
    return quantize_canonical(ldh_u_l * (crp_mg_l / CRP_MG_L_PER_MG_DL) / platelets_10e9_l)


def _log2(value: Decimal | None) -> float | None:
    if value is None or value <= 0:
        return None
    return math.log2(value)


def _from_set(chosen: dict[str, Lab], *, day: int | None, approximate: bool) -> MEasixResult:
    inputs = {code: lab.value for code, lab in chosen.items()}
    if len(chosen) < len(MEASIX_ANALYTES):
        return MEasixResult(None, None, day, approximate, inputs, REASON_MISSING)
    if any(lab.comparator is not None for lab in chosen.values()):
        return MEasixResult(None, None, day, approximate, inputs, REASON_CENSORED)
    value = m_easix(
        chosen[Analyte.LDH.value].value,
        chosen[Analyte.CRP.value].value,
        chosen[Analyte.PLATELETS.value].value,
    )
    reason = REASON_ZERO_PLATELETS if value is None else ""
    return MEasixResult(value, _log2(value), day, approximate, inputs, reason)


def _latest_by_analyte(labs: LabIndex, days: tuple[int, ...]) -> dict[str, Lab]:
    chosen: dict[str, Lab] = {}
    for lab in (lab for analyte in MEASIX_ANALYTES for lab in labs.on_days(analyte, days)):
        current = chosen.get(lab.analyte)
        if current is None or (lab.collected_at, lab.value) > (current.collected_at, current.value):
            chosen[lab.analyte] = lab
    return chosen


def daily_m_easix(labs: Sequence[Lab] | LabIndex, *, day: int) -> MEasixResult:
    """Return the daily m-EASIX of day d from the latest inputs of day d or d−1 (a trend)."""
    chosen = _latest_by_analyte(lab_index(labs), (day, day - 1))
    return _from_set(chosen, day=day, approximate=False)


def _latest_complete_set(labs: LabIndex, first_day: int, last_day: int) -> MEasixResult:
    for day in range(last_day, first_day - 1, -1):
        chosen = _latest_by_analyte(labs, (day,))
        if len(chosen) == len(MEASIX_ANALYTES):
            return _from_set(chosen, day=day, approximate=False)
    return MEasixResult(None, None, None, False, {}, REASON_MISSING)


def pre_ld_m_easix(labs: Sequence[Lab] | LabIndex, *, lymphodepletion_day: int | None) -> MEasixResult:
    """Return m-EASIX of the latest same-day set in days ld−7…ld, else −14…−1 (approximate)."""
    index = lab_index(labs)
    if lymphodepletion_day is not None:
        return _latest_complete_set(index, lymphodepletion_day - PRE_LD_WINDOW_DAYS, lymphodepletion_day)
    result = _latest_complete_set(index, APPROX_WINDOW_FIRST_DAY, APPROX_WINDOW_LAST_DAY)
    return MEasixResult(result.value, result.log2, result.day, True, result.inputs, result.reason)
