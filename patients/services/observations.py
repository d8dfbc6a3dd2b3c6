"""Bedside observations (SPEC 2.3): validation, record and void."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crsrisk.writes import ConflictError, check_not_future_date
from crsrisk.writes import check_version as _check_version
from crsrisk.writes import require_reason as _require_reason
from crsrisk.writes import save_with_history as _save
from patients.models import TMAX_MAX_C, TMAX_MIN_C, Hypotension, Observation, Oxygen, Patient, Source
from patients.services._common import check_day, lock_patient, recompute_patient, void_row
from patients.services.events import check_not_after_death
from scoring.rules.days import day_of_date

OBSERVATION_FIELDS = (
    "tmax_c",
    "hypotension",
    "oxygen",
    "antipyretic",
    "tocilizumab",
    "corticosteroids",
)


def validate_observation(values: dict[str, Any]) -> dict[str, Any]:
    """Check the ASTCT inputs of one day (SPEC 2.3); return them normalised."""
    out = dict(values)
    tmax = out.get("tmax_c")
    if tmax is not None and tmax != "":
        try:
            tmax = Decimal(str(tmax))
        except ArithmeticError as exc:
            raise ValidationError(
                {
                    "tmax_c": _(
                        "Tmax must be a number in °C, not '%(value)s': 30.0–45.0 °C, such as 38.5 "
                        "(or leave it empty)."
                    )
                    % {"value": tmax}
                }
            ) from exc
        if not tmax.is_finite() or not TMAX_MIN_C <= tmax <= TMAX_MAX_C:
            raise ValidationError(
                {
                    "tmax_c": _(
                        "Tmax %(value)s °C is outside the accepted range 30.0–45.0 °C (or leave it empty)."
                    )
                    % {"value": tmax}
                }
            )
        if tmax != tmax.quantize(Decimal("0.1")):
            # Refused, not rounded: a slip is never turned silently into another number (SPEC 9).
            raise ValidationError(
                {
                    "tmax_c": _(
                        "Tmax %(value)s °C has more than one decimal; it is recorded to one decimal, "
                        "such as 38.5."
                    )
                    % {"value": tmax}
                }
            )
        out["tmax_c"] = tmax.quantize(Decimal("0.1"))
    else:
        out["tmax_c"] = None
    if out.get("hypotension", "none") not in Hypotension.values:
        raise ValidationError(
            {
                "hypotension": _("Hypotension must be one of %(values)s.")
                % {"values": ", ".join(Hypotension.values)}
            }
        )
    if out.get("oxygen", "none") not in Oxygen.values:
        raise ValidationError(
            {"oxygen": _("Oxygen must be one of %(values)s.") % {"values": ", ".join(Oxygen.values)}}
        )
    out.setdefault("hypotension", Hypotension.NONE)
    out.setdefault("oxygen", Oxygen.NONE)
    for flag in ("antipyretic", "tocilizumab", "corticosteroids"):
        out[flag] = bool(out.get(flag, False))
    return out


@transaction.atomic
def observation_record(
    *,
    user: Any,
    patient: Patient,
    date: date,
    expected_version: int | None = None,
    reason: str = "",
    note: str = "",
    source: str = Source.FORM,
    **values: Any,
) -> Observation:
    """Record a day's observation; a second entry for that day updates it (with a reason)."""
    patient = lock_patient(patient)
    unknown = set(values) - set(OBSERVATION_FIELDS)
    if unknown:
        raise ValidationError(
            _("Unknown observation fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))}
        )
    check_day(day_of_date(date, patient.infusion.infusion_date), "date")
    check_not_future_date(date, "date")
    check_not_after_death(patient, date, "date")
    clean = validate_observation(values)
    existing = Observation.objects.active().select_for_update().filter(patient=patient, date=date).first()
    if existing is None:
        if expected_version:
            raise ConflictError(
                _("The observation you edited has been voided since you opened it. Nothing was saved."),
                code="conflict",
            )
        obs = Observation(
            patient=patient,
            date=date,
            note=note,
            source=source,
            entered_by=user if getattr(user, "is_authenticated", False) else None,
            entered_at=timezone.now(),
            **clean,
        )
        _save(obs, user=user, reason="entered")
    else:
        if all(getattr(existing, f) == v for f, v in clean.items()) and note == existing.note:
            return existing
        if expected_version is None:
            # The writer never saw the stored row: changing it now would be a lost update.
            who = getattr(existing.entered_by, "username", None) or existing.source
            raise ConflictError(
                _(
                    "An observation for %(date)s is already recorded (%(who)s, version %(version)d). "
                    "Nothing was saved: review it, then change it with a reason."
                )
                % {"date": f"{date:%Y-%m-%d}", "who": who, "version": existing.version},
                code="conflict",
            )
        _check_version(existing, expected_version, _("observation"))
        reason = _require_reason(
            reason, _("change the observation of %(date)s") % {"date": f"{date:%Y-%m-%d}"}
        )
        for f, v in clean.items():
            setattr(existing, f, v)
        existing.note = note
        existing.version += 1
        _save(existing, user=user, reason=reason)
        obs = existing
    recompute_patient(patient)
    return obs


@transaction.atomic
def observation_void(
    *, user: Any, observation: Observation, expected_version: int | None, reason: str
) -> Observation:
    """Void a day's observation with a reason."""
    return void_row(
        observation, user=user, expected_version=expected_version, reason=reason, what=_("observation")
    )
