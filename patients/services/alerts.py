"""Alerts acknowledged by a hematologist (SPEC 6)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crsrisk.writes import save_with_history as _save
from scoring.models import Alert


@transaction.atomic
def alert_acknowledge(*, user: Any, alert: Alert, note: str) -> Alert:
    """A hematologist acknowledges an alert with a note; the alert is kept."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": _("An acknowledgement needs a note.")})
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.acknowledged_at is not None:
        raise ValidationError(_("This alert is already acknowledged."))
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = user
    alert.acknowledgement_note = note
    _save(alert, user=user, reason=f"acknowledged: {note}")
    return alert
