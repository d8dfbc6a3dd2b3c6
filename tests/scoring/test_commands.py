"""The recompute command (SPEC 8.3)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from scoring.models import DailyAssessment
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
