"""CRS grades set by hand (SPEC 4.1): a hematologist's grade for a day, kept beside the computed one."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crsrisk.writes import check_not_future_date
from crsrisk.writes import require_reason as _require_reason
from crsrisk.writes import save_with_history as _save
from patients.models import GradeOverride, Patient
from patients.services._common import check_day, lock_patient, recompute_patient, void_row
from patients.services.events import check_not_after_death
from scoring.rules.days import day_of_date


@transaction.atomic
def grade_override_set(*, user: Any, patient: Patient, date: date, grade: int, reason: str) -> GradeOverride:
    """Record a hematologist's CRS grade for a day; the computed grade is kept too."""
    reason = _require_reason(reason, _("override a CRS grade"))
    patient = lock_patient(patient)
    if not isinstance(grade, int) or not 0 <= grade <= 4:
        raise ValidationError({"grade": _("A recorded grade must be 0–4 (grade 5 is a death from CRS).")})
    day = day_of_date(date, patient.infusion.infusion_date)
    if day < 0:
        raise ValidationError({"date": _("There is no CRS grade before infusion (day 0).")})
    check_day(day, "date")
    check_not_future_date(date, "date")
    check_not_after_death(patient, date, "date")
    current = GradeOverride.objects.active().select_for_update().filter(patient=patient, date=date).first()
    if current is not None and (current.grade, current.reason) == (grade, reason):
        # The same grade and reason again (a form saved twice after Back): nothing to record.
        raise ValidationError(
            {
                "grade": _(
                    "CRS grade %(grade)d is already recorded by hand for %(date)s (%(reason)s). "
                    "Nothing was saved: a grade is recorded once."
                )
                % {"grade": grade, "date": f"{date:%Y-%m-%d}", "reason": current.reason}
            }
        )
    now = timezone.now()
    if current is not None:
        current.voided_at, current.void_reason = now, f"replaced: {reason}"
        current.voided_by = user if getattr(user, "is_authenticated", False) else None
        current.version += 1
        _save(current, user=user, reason=f"replaced: {reason}")
    override = GradeOverride(
        patient=patient,
        date=date,
        grade=grade,
        reason=reason,
        entered_by=user if getattr(user, "is_authenticated", False) else None,
        entered_at=now,
    )
    _save(override, user=user, reason=reason)
    recompute_patient(patient)
    return override


@transaction.atomic
def grade_override_void(
    *, user: Any, override: GradeOverride, reason: str, expected_version: int | None = None
) -> GradeOverride:
    """Remove a grade override (void with a reason); the computed grade applies again."""
    return void_row(
        override, user=user, expected_version=expected_version, reason=reason, what=_("grade override")
    )
