"""The recompute command (SPEC 8.3)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from scoring.models import DailyAssessment, PatientSummary
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db


def test_recompute_all_reports_progress_and_restores_results(patient):
    DailyAssessment.objects.filter(patient=patient).delete()
    err = StringIO()
    call_command("recompute", stderr=err)
    assert "recomputed 1/1" in err.getvalue()
    assert_stored_equals_scratch(patient)


def test_recompute_one_mrn_and_unknown_mrn(patient):
    err = StringIO()
    call_command("recompute", "--mrn", patient.mrn, stderr=err)
    assert "recomputed 1 patient(s)." in err.getvalue()
    with pytest.raises(CommandError, match="no such patient"):
        call_command("recompute", "--mrn", "NOPE", stderr=StringIO())


def test_recompute_refuses_an_empty_mrn(patient):
    with pytest.raises(CommandError, match="no such patient"):
        call_command("recompute", "--mrn", "", stderr=StringIO())


def test_recompute_pending_finishes_only_the_marked_patients(patient, clinician, team):
    from datetime import date

    from patients import services
    from scoring.models import PendingRecompute
    from scoring.services import recompute_later

    other = services.patient_register(
        user=clinician, mrn="OTHER1", name="Other", infusion_date=date(2025, 3, 1), care_team=team
    )
    # As an import stopped after its rows: one patient's results gone, and marked.
    DailyAssessment.objects.filter(patient=patient).delete()
    assert PatientSummary.objects.filter(patient=other).exists()
    PatientSummary.objects.filter(patient=other).delete()
    recompute_later([patient.pk])
    err = StringIO()
    call_command("recompute", "--pending", stderr=err)
    assert "recomputed 1/1" in err.getvalue() and "recomputed 1 patient(s) marked" in err.getvalue()
    assert_stored_equals_scratch(patient)
    assert not PendingRecompute.objects.exists()
    assert not PatientSummary.objects.filter(patient=other).exists()  # not marked: not touched
    with pytest.raises(CommandError, match="cannot be given together"):
        call_command("recompute", "--pending", "--mrn", patient.mrn, stderr=StringIO())
