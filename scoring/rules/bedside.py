"""Bedside observation rules: the ASTCT oxygen and hypotension categories, the SBP norm (SPEC 2.3).

Pure functions, no Django: the entry form turns its device, flow and vasopressor fields
into the categories the grading reads (``scoring.rules.astct``) through these.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from .messages import Message, RuleError, gettext_noop

# The ASTCT categories, as stored (patients.models.Oxygen and Hypotension).
OXYGEN_NONE = "none"
OXYGEN_LOW_FLOW = "low_flow"
OXYGEN_HIGH_FLOW = "high_flow"
OXYGEN_POSITIVE_PRESSURE = "positive_pressure"
HYPOTENSION_NONE = "none"
HYPOTENSION_NO_VASOPRESSOR = "no_vasopressor"
HYPOTENSION_ONE_VASOPRESSOR = "one_vasopressor"
HYPOTENSION_MULTIPLE_VASOPRESSORS = "multiple_vasopressors"

LOW_FLOW_MAX_L_MIN = Decimal(6)  # nasal cannula ≤ 6 L/min is low flow, SPEC 2.3
PEDIATRIC_SBP_BASE_MMHG = 70  # SBP < 70 + 2 × age for ages 1–10, SPEC 2.3
PEDIATRIC_SBP_PER_YEAR_MMHG = 2
OLDER_SBP_MMHG = 90  # SBP < 90 mmHg above 10 years, SPEC 2.3

NASAL_CANNULA = "nasal_cannula"
# The devices other than the nasal cannula set the category by themselves.
DEVICE_CATEGORY = {
    "none": OXYGEN_NONE,
    "blow_by": OXYGEN_LOW_FLOW,
    "facemask": OXYGEN_HIGH_FLOW,
    "non_rebreather": OXYGEN_HIGH_FLOW,
    "venturi": OXYGEN_HIGH_FLOW,
    "cpap": OXYGEN_POSITIVE_PRESSURE,
    "bipap": OXYGEN_POSITIVE_PRESSURE,
    "intubation": OXYGEN_POSITIVE_PRESSURE,
}

FLOW_NEEDED = gettext_noop("Enter the nasal-cannula flow in L/min (≤ 6 is low flow, > 6 high flow).")
FLOW_NOT_COUNTED = gettext_noop(
    "A flow counts only for a nasal cannula; this device sets the category by itself. "
    "Clear the flow (write it in the note if it matters), or choose the nasal cannula."
)


class OxygenFlowError(RuleError):
    """A flow missing for a nasal cannula, or given for a device that ignores it."""


def oxygen_category(device: str, flow_l_min: Decimal | None) -> str:
    """The ASTCT oxygen category of a device and flow (SPEC 2.3).

    A flow is required for a nasal cannula and refused for any other device, where it
    would be silently lost. An unknown device raises ``KeyError``.
    """
    if device == NASAL_CANNULA:
        if flow_l_min is None:
            raise OxygenFlowError(Message(FLOW_NEEDED))
        return OXYGEN_LOW_FLOW if flow_l_min <= LOW_FLOW_MAX_L_MIN else OXYGEN_HIGH_FLOW
    if flow_l_min is not None:
        raise OxygenFlowError(Message(FLOW_NOT_COUNTED))
    return DEVICE_CATEGORY[device]


def hypotension_category(vasopressors: int, vasopressin: bool, hypotension_without: bool) -> str:
    """The ASTCT hypotension category; vasopressin is not counted among several (SPEC 2.3)."""
    if vasopressors >= 2:
        return HYPOTENSION_MULTIPLE_VASOPRESSORS
    if vasopressors == 1 or vasopressin:
        return HYPOTENSION_ONE_VASOPRESSOR
    if hypotension_without:
        return HYPOTENSION_NO_VASOPRESSOR
    return HYPOTENSION_NONE


def sbp_norm_mmhg(birth_date: date | None, on: date) -> tuple[int, int] | None:
    """(age in years, SBP threshold) for the pediatric hypotension norm of SPEC 2.3, or None."""
    if birth_date is None:
        return None
    age = on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    if age < 1:
        return None
    if age <= 10:
        return age, PEDIATRIC_SBP_BASE_MMHG + PEDIATRIC_SBP_PER_YEAR_MMHG * age
    return age, OLDER_SBP_MMHG
