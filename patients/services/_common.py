"""What every clinical writer shares: the day range, the patient lock, the recompute and the void."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from crsrisk.writes import check_version as _check_version
from crsrisk.writes import require_reason as _require_reason
from crsrisk.writes import save_with_history as _save
from patients.models import LabResult, Patient, SiteParameters
from scoring.rules.days import MAX_DAY, MIN_DAY
from scoring.services import request_recompute


def check_day(day: int, field_name: str) -> None:
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValidationError(
            {
                field_name: _(
                    "Day %(day)s after infusion is outside the accepted range "
                    "%(min)d…+%(max)d: probably a wrong date or a wrong patient."
                )
                % {"day": f"{day:+d}", "min": MIN_DAY, "max": MAX_DAY}
            }
        )


def lock_patient(patient: Patient) -> Patient:
    """Serialize writers of one patient, so two recomputes never interleave."""
    return Patient.objects.select_for_update(of=("self",)).select_related("infusion").get(pk=patient.pk)


def recompute_patient(
    patient: Patient, *, since: datetime | None = None, params: SiteParameters | None = None
) -> None:
    # ``since``: the earliest collection time of the labs a lab-only write changed. Such a
    # write leaves the infusion as ``lock_patient`` read it, so the recompute reuses it.
    # ``params``: the site parameters the write read in its transaction, not read again.
    infusion = getattr(patient, "infusion", None) if since is not None else None
    known = {patient.pk: infusion} if infusion is not None else None
    request_recompute([patient.pk], since=since, infusions=known, params=params)


def void_row(row: Any, *, user: Any, expected_version: int | None, reason: str, what: str) -> Any:
    """Void one clinical row with a reason (never a delete), then recompute its patient."""
    reason = _require_reason(reason, _("void this %(what)s") % {"what": what})
    patient = lock_patient(row.patient)
    row = type(row).objects.select_for_update().get(pk=row.pk)
    _check_version(row, expected_version, what)
    if row.is_voided:
        raise ValidationError(_("This %(what)s is already voided.") % {"what": what})
    row.voided_at = timezone.now()
    row.voided_by = user if getattr(user, "is_authenticated", False) else None
    row.void_reason = reason
    row.version += 1
    _save(row, user=user, reason=f"voided: {reason}")
    recompute_patient(patient, since=row.collected_at if isinstance(row, LabResult) else None)
    return row
