"""The baselines the bench divides by: the same work without the application's logic.

Mounted only by ``bench.urls``, which the bench installs with ``override_settings``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from patients.models import LabResult, Patient

# The ward rows the bare ward view renders; the bench fills it from ``ward_rows`` first.
PRECOMPUTED_WARD: dict[str, Any] = {}


def bare_lab_panel(request: HttpRequest, mrn: str) -> HttpResponse:
    """The same inserts as a lab panel POST: no validation, history or recompute."""
    patient = get_object_or_404(Patient, mrn=mrn)
    collected_at = datetime.fromisoformat(request.POST["collected_at"])
    now = timezone.now()
    with transaction.atomic():
        for key, value in request.POST.items():
            if key.endswith("_value"):
                LabResult.objects.create(
                    patient=patient,
                    analyte=key.removesuffix("_value"),
                    value=Decimal(value),
                    collected_at=collected_at,
                    entered_value=value,
                    entered_unit=request.POST.get(key.replace("_value", "_unit"), ""),
                    entered_at=now,
                )
    return redirect(patient)


def bare_ward(request: HttpRequest) -> HttpResponse:
    """The ward template over rows computed before the timing."""
    return render(request, "patients/ward_list.html", PRECOMPUTED_WARD)
