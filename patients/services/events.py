"""Clinical events (SPEC 2.4, 9): their order, record and void, and the checks that other nouns make
against a recorded death."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crsrisk.writes import check_not_future_date, site_zone
from crsrisk.writes import save_with_history as _save
from patients.models import (
    EVENT_DETAILS,
    ClinicalEvent,
    EventKind,
    GradeOverride,
    Observation,
    Patient,
    Source,
)
from patients.services._common import check_day, lock_patient, recompute_patient, void_row
from scoring.rules.days import day_of_date

EVENT_DETAIL_WORDS = {
    "crs": gettext_lazy("from CRS"),
    "other": gettext_lazy("from another cause"),
    "anti_leukemic": gettext_lazy("anti-leukemic"),
    "immunomodulatory": gettext_lazy("immunomodulatory"),
}


def event_words(kind: str, on: date, detail: str = "") -> str:
    """An event in words, in the active language: "complete remission on 2025-03-29"."""
    what = str(EventKind(kind).label) if kind in EventKind.values else kind
    if detail:
        what = _("%(kind)s (%(detail)s)") % {"kind": what, "detail": EVENT_DETAIL_WORDS.get(detail, detail)}
    return _("%(event)s on %(date)s") % {"event": what, "date": f"{on:%Y-%m-%d}"}


def event_conflict(recorded: Sequence[Any], *, kind: str, on: date, detail: str = "") -> str | None:
    """Why an event cannot be recorded beside the live ``recorded`` ones, or None (SPEC 2.4).

    ``recorded`` are events with ``kind``, ``date`` and ``detail``. The same event
    (kind, detail, date) is recorded once; nothing follows a death, and a death follows
    everything; a complete remission follows another only after a relapse between them.
    """
    for e in recorded:
        if (e.kind, e.date, e.detail) == (kind, on, detail):
            return _("Already recorded: %(event)s. Nothing was saved: an event is recorded once.") % {
                "event": event_words(e.kind, e.date, e.detail)
            }
    death = next((e for e in recorded if e.kind == EventKind.DEATH), None)
    if kind == EventKind.DEATH:
        if death is not None:
            return _("A death is already recorded (%(event)s); void it first.") % {
                "event": event_words(death.kind, death.date, death.detail)
            }
        later = sorted((e for e in recorded if e.date > on), key=lambda e: e.date)
        if later:
            return _(
                "A death on %(date)s would come before %(event)s, which is already recorded. "
                "Check the date, or void that event first."
            ) % {
                "date": f"{on:%Y-%m-%d}",
                "event": event_words(later[0].kind, later[0].date, later[0].detail),
            }
    elif death is not None and on > death.date:
        return after_death_text(death.date, death.detail, on)
    if kind == EventKind.CR:
        for e in sorted(recorded, key=lambda e: e.date):
            if e.kind != EventKind.CR:
                continue
            low, high = sorted((e.date, on))
            if not any(r.kind == EventKind.RELAPSE and low <= r.date <= high for r in recorded):
                return _(
                    "A second complete remission needs a relapse before it: %(event)s is already recorded, "
                    "with no relapse between it and %(date)s. Record the relapse first, "
                    "or check the date."
                ) % {"event": event_words(e.kind, e.date, e.detail), "date": f"{on:%Y-%m-%d}"}
    return None


def after_death_text(death_date: date, death_detail: str, on: date) -> str:
    """The refusal of anything dated after the recorded death."""
    return _(
        "%(date)s is after the recorded %(event)s: nothing dated later can be recorded. "
        "Check the date, or the patient."
    ) % {"date": f"{on:%Y-%m-%d}", "event": event_words(EventKind.DEATH, death_date, death_detail)}


def check_not_after_death(patient: Patient, on: date, field_name: str) -> None:
    """Refuse a record dated after the patient's recorded death (the day itself is allowed)."""
    death = ClinicalEvent.objects.active().filter(patient=patient, kind=EventKind.DEATH).first()
    if death is not None and on > death.date:
        raise ValidationError({field_name: after_death_text(death.date, death.detail, on)})


def _check_death_after_records(patient: Patient, on: date) -> None:
    """Refuse a death dated before a recorded observation, grade override or lab value."""
    obs = Observation.objects.active().filter(patient=patient, date__gt=on).order_by("date").first()
    if obs is not None:
        raise ValidationError(
            {
                "date": _(
                    "A death on %(date)s would come before the observation of %(other)s, which is "
                    "already recorded. Check the date, or void that observation first."
                )
                % {"date": f"{on:%Y-%m-%d}", "other": f"{obs.date:%Y-%m-%d}"}
            }
        )
    override = GradeOverride.objects.active().filter(patient=patient, date__gt=on).order_by("date").first()
    if override is not None:
        raise ValidationError(
            {
                "date": _(
                    "A death on %(date)s would come before the CRS grade set by hand for %(other)s. "
                    "Check the date, or remove that grade first."
                )
                % {"date": f"{on:%Y-%m-%d}", "other": f"{override.date:%Y-%m-%d}"}
            }
        )
    next_day = datetime.combine(on + timedelta(days=1), time.min, tzinfo=site_zone())
    lab = patient.labs.active().filter(collected_at__gte=next_day).order_by("collected_at").first()
    if lab is not None:
        raise ValidationError(
            {
                "date": _(
                    "A death on %(date)s would come before the %(analyte)s value collected at %(other)s, "
                    "which is already recorded. Check the date, or void that value first."
                )
                % {
                    "date": f"{on:%Y-%m-%d}",
                    "analyte": lab.get_analyte_display(),
                    "other": f"{lab.collected_at.astimezone(site_zone()):%Y-%m-%d %H:%M}",
                }
            }
        )


def validate_event(kind: str, detail: str) -> tuple[str, str]:
    """Check an event kind and its detail (SPEC 2.4)."""
    if kind not in EventKind.values:
        raise ValidationError(
            {
                "kind": _("Event must be one of %(values)s, not '%(kind)s'.")
                % {"values": ", ".join(EventKind.values), "kind": kind}
            }
        )
    allowed = EVENT_DETAILS.get(kind)
    detail = (detail or "").strip()
    if allowed and detail not in allowed:
        raise ValidationError(
            {
                "detail": _("A %(kind)s event needs a detail: %(allowed)s.")
                % {
                    "kind": EventKind(kind).label,
                    "allowed": _(" or ").join(allowed),  # the codes a file or the API sends
                }
            }
        )
    if not allowed and detail:
        raise ValidationError(
            {"detail": _("A %(kind)s event takes no detail.") % {"kind": EventKind(kind).label}}
        )
    return kind, detail


@transaction.atomic
def event_record(
    *,
    user: Any,
    patient: Patient,
    kind: str,
    date: date,
    detail: str = "",
    note: str = "",
    source: str = Source.FORM,
) -> ClinicalEvent:
    """Record a clinical event or outcome."""
    patient = lock_patient(patient)
    kind, detail = validate_event(kind, detail)
    check_day(day_of_date(date, patient.infusion.infusion_date), "date")
    check_not_future_date(date, "date")
    recorded = list(ClinicalEvent.objects.active().filter(patient=patient))
    conflict = event_conflict(recorded, kind=kind, on=date, detail=detail)
    if conflict is not None:
        second_death = kind == EventKind.DEATH and any(e.kind == EventKind.DEATH for e in recorded)
        raise ValidationError({"kind" if second_death else "date": conflict})
    if kind == EventKind.DEATH:
        _check_death_after_records(patient, date)
    event = ClinicalEvent(
        patient=patient,
        kind=kind,
        date=date,
        detail=detail,
        note=note,
        source=source,
        entered_by=user if getattr(user, "is_authenticated", False) else None,
        entered_at=timezone.now(),
    )
    _save(event, user=user, reason="entered")
    recompute_patient(patient)
    return event


@transaction.atomic
def event_void(
    *, user: Any, event: ClinicalEvent, expected_version: int | None, reason: str
) -> ClinicalEvent:
    """Void an event with a reason."""
    return void_row(event, user=user, expected_version=expected_version, reason=reason, what=_("event"))
