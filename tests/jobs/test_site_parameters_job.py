"""The site parameter job: the change commits alone, the recompute locks chunk by chunk (review f1)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crsrisk.jobs import services as job_services
from crsrisk.jobs.models import Job
from patients import services as patient_services
from patients.models import Patient, SiteParameters
from scoring import services as scoring_services
from scoring.models import ScoreModel
from tests.conftest import run_queued_jobs
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db


@pytest.fixture
def ward(hematologist, team) -> list[Patient]:
    patients = []
    for i in range(3):
        p = patient_services.patient_register(
            user=hematologist, mrn=f"SP{i}", name=f"Site {i}", infusion_date=date(2025, 3, 1), care_team=team
        )
        for day, value in ((7, "0"), (20, "3")):
            patient_services.lab_record(
                user=hematologist,
                patient=p,
                analyte="bcell",
                value=value,
                collected_at=datetime(2025, 3, 1 + day, 8, tzinfo=UTC),
            )
        patients.append(p)
    return patients


def test_an_entry_made_during_the_recompute_ends_up_under_the_new_parameters(monkeypatch, hematologist, ward):
    monkeypatch.setattr(scoring_services, "ACTIVATION_CHUNK", 1)
    job = job_services.job_start(
        kind=Job.Kind.SITE_PARAMETERS,
        user=hematologist,
        params={"version": 1, "reason": "local policy", "confirm_regeneration": False},
    )
    real = scoring_services.recompute_patients
    entered = []

    def entry_between_chunks(ids, **kwargs):
        done = real(ids, **kwargs)
        if not entered:  # after the first chunk committed, a bedside entry on the last patient
            entered.append(True)
            patient_services.lab_record(
                user=hematologist,
                patient=ward[-1],
                analyte="bcell",
                value="5",
                collected_at=datetime(2025, 3, 23, 8, tzinfo=UTC),
            )
        return done

    monkeypatch.setattr(scoring_services, "recompute_patients", entry_between_chunks)
    run_queued_jobs()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.errors
    assert SiteParameters.load().version == 2 and entered
    for p in ward:
        assert p.summaries.get().bcell_status == "early_regeneration"
        assert_stored_equals_scratch(p)


def test_a_site_parameter_change_is_refused_while_a_model_is_activated(hematologist, ward):
    source = ScoreModel.objects.active()
    draft = scoring_services.score_model_create_draft(
        user=hematologist, source=source, name="site-v1", provenance="edited", spec=source.spec
    )
    ScoreModel.objects.filter(pk=draft.pk).update(activation_started_at=timezone.now())
    with pytest.raises(ValidationError) as exc:
        patient_services.site_parameters_update(
            user=hematologist, expected_version=1, reason="local policy", confirm_regeneration=False
        )
    assert exc.value.code == "activation_running"
    assert SiteParameters.load().version == 1
    for p in ward:
        assert p.summaries.get().bcell_status == "regeneration_suspected"


def test_an_activation_is_refused_while_the_site_parameters_change(hematologist, ward):
    source = ScoreModel.objects.active()
    draft = scoring_services.score_model_create_draft(
        user=hematologist, source=source, name="site-v1", provenance="edited", spec=source.spec
    )
    Job.objects.create(kind=Job.Kind.SITE_PARAMETERS, started_by=hematologist, status=Job.Status.RUNNING)
    with pytest.raises(ValidationError) as exc:
        scoring_services.score_model_activate(model=draft, user=hematologist)
    assert exc.value.code == "site_parameters_running"
    draft.refresh_from_db()
    assert draft.activation_started_at is None
