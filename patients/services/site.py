"""Site parameters (SPEC 8.5): their validation and update, and the recompute a change needs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from crsrisk.writes import check_version as _check_version
from crsrisk.writes import require_reason as _require_reason
from crsrisk.writes import save_with_history as _save
from patients.models import SiteParameters
from scoring.i18n import error_text
from scoring.models import ScoreModel
from scoring.rules import units
from scoring.rules.days import MAX_DAY
from scoring.services import recompute_all_in_chunks

SITE_FIELDS = (
    "bcell_threshold",
    "regeneration_window_days",
    "confirm_regeneration",
    "crs_outcome_window",
    "default_care_team",
    "usual_units",
)
# The usual units change no derived result: they only decide what a form asks.
SITE_FIELDS_WITHOUT_RECOMPUTE = frozenset({"usual_units"})


def _validate_usual_units(value: Any) -> dict[str, str]:
    """Check an analyte→unit mapping; keep only units other than the canonical one."""
    if not isinstance(value, dict):
        raise ValidationError({"usual_units": _("The usual units must map analyte codes to units.")})
    out: dict[str, str] = {}
    for code, unit in value.items():
        spec = units.ANALYTES.get(code)
        if spec is None:
            raise ValidationError(
                {"usual_units": _("Unknown analyte '%(code)s' in the usual units.") % {"code": code}}
            )
        try:
            factor = spec.unit_factor(str(unit or ""))
        except units.UnitError as exc:
            raise ValidationError({f"usual_unit_{code}": error_text(exc)}) from exc
        if factor.display != spec.canonical_unit:
            out[code] = factor.display
    return out


def site_parameters_update(
    *, user: Any, expected_version: int | None, reason: str, **changes: Any
) -> SiteParameters:
    """Change the clinical site parameters and recompute every patient (SPEC 8.5).

    The change is one audited transaction; the recompute then runs in chunks of patients,
    each locked as a write locks them and committed on its own, so an entry made meanwhile
    waits for its chunk or is computed under the new parameters, never overwritten.
    Refused while a score model activation runs. A change of the usual units alone
    recomputes nothing.
    """
    params, recompute = _site_parameters_change(
        user=user, expected_version=expected_version, reason=reason, **changes
    )
    if recompute:
        recompute_all_in_chunks()
    return params


@transaction.atomic
def _site_parameters_change(
    *, user: Any, expected_version: int | None, reason: str, **changes: Any
) -> tuple[SiteParameters, bool]:
    reason = _require_reason(reason, _("change the site parameters"))
    unknown = set(changes) - set(SITE_FIELDS)
    if unknown:
        raise ValidationError(
            _("Unknown site parameters: %(fields)s.") % {"fields": ", ".join(sorted(unknown))}
        )
    SiteParameters.load()
    params = SiteParameters.objects.select_for_update().get(pk=1)
    _check_version(params, expected_version, _("site parameters"))
    if "bcell_threshold" in changes and Decimal(changes["bcell_threshold"]) < 0:
        raise ValidationError({"bcell_threshold": _("τ must be 0 cells/µL or more.")})
    if "regeneration_window_days" in changes and int(changes["regeneration_window_days"]) < 1:
        raise ValidationError({"regeneration_window_days": _("W must be at least 1 day.")})
    if "crs_outcome_window" in changes and not 0 <= int(changes["crs_outcome_window"]) <= MAX_DAY:
        raise ValidationError(
            {"crs_outcome_window": _("The window must be 0–%(max)d days.") % {"max": MAX_DAY}}
        )
    if "usual_units" in changes:
        # The analytes named are set; the others keep their usual unit.
        merged = {**(params.usual_units or {}), **changes["usual_units"]}
        changes["usual_units"] = _validate_usual_units(merged)
    changed = {f for f, v in changes.items() if getattr(params, f) != v}
    for f, v in changes.items():
        setattr(params, f, v)
    recompute = bool(changed - SITE_FIELDS_WITHOUT_RECOMPUTE)
    if recompute and ScoreModel.objects.being_activated().exists():
        raise ValidationError(
            _("A score model is being activated: change the site parameters when it has finished."),
            code="activation_running",
        )
    params.version += 1
    _save(params, user=user, reason=reason)
    return params, recompute
