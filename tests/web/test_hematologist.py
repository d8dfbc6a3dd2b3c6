"""Hematologist pages: events, grade overrides, acknowledgements, score models, site parameters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from crsrisk.jobs.models import Job
from patients import services
from patients.models import ClinicalEvent, GradeOverride, SiteParameters
from scoring.models import Alert, ModelStatus, PatientSummary, ScoreModel
from scoring.rules.score import PROVISIONAL_V0, model_spec_to_dict
from tests.conftest import run_queued_jobs
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db


def test_record_an_event_with_its_detail(hema_client, ward_patient):
    url = reverse("patients:event-entry", args=[ward_patient.mrn])
    d = ward_patient.infusion.infusion_date + timedelta(days=2)
    response = hema_client.post(url, {"kind": "death", "date": d.isoformat(), "detail": "", "note": ""})
    assert response.status_code == 200
    assert b'id="id_detail_error"' in response.content
    assert not ClinicalEvent.objects.exists()
    response = hema_client.post(url, {"kind": "death", "date": d.isoformat(), "detail": "crs", "note": ""})
    assert response.status_code == 302
    assert PatientSummary.objects.get(patient=ward_patient).max_crs_grade == 5
    assert_stored_equals_scratch(ward_patient)


def test_event_void(hema_client, hematologist, ward_patient):
    event = services.event_record(
        user=hematologist, patient=ward_patient, kind="cr", date=ward_patient.infusion.infusion_date
    )
    url = reverse("patients:event-void", args=[ward_patient.mrn, event.pk])
    assert hema_client.post(url, {"version": event.version, "reason": "entered twice"}).status_code == 302
    event.refresh_from_db()
    assert event.voided_at is not None


def test_grade_override_with_reason(hema_client, hematologist, ward_patient):
    d = ward_patient.infusion.infusion_date + timedelta(days=1)
    services.observation_record(user=hematologist, patient=ward_patient, date=d, tmax_c="38.9")
    url = reverse("patients:override", args=[ward_patient.mrn])
    response = hema_client.post(url, {"date": d.isoformat(), "grade": "0", "reason": ""})
    assert response.status_code == 200
    assert not GradeOverride.objects.exists()
    response = hema_client.post(url, {"date": d.isoformat(), "grade": "7", "reason": "x"})
    assert response.status_code == 200
    assert b'id="id_grade_error"' in response.content
    response = hema_client.post(url, {"date": d.isoformat(), "grade": "0", "reason": "documented infection"})
    assert response.status_code == 302
    assert GradeOverride.objects.get().grade == 0
    assert_stored_equals_scratch(ward_patient)
    html = hema_client.get(reverse("patients:detail", args=[ward_patient.mrn])).content.decode()
    assert "documented infection" in html


def test_acknowledged_alert_leaves_the_ward_list_but_is_kept(hema_client, hematologist, ward_patient):
    services.observation_record(
        user=hematologist,
        patient=ward_patient,
        date=ward_patient.infusion.infusion_date,
        tmax_c="39.0",
        oxygen="high_flow",
    )
    alert = Alert.objects.get(kind="severe_crs")
    assert b"CRS grade" in hema_client.get(reverse("patients:ward")).content
    url = reverse("patients:alert-ack", args=[ward_patient.mrn, alert.pk])
    response = hema_client.post(url, {"note": ""})
    assert response.status_code == 200
    assert b'id="id_note_error"' in response.content
    assert hema_client.post(url, {"note": "ICU aware"}).status_code == 302
    html = hema_client.get(reverse("patients:detail", args=[ward_patient.mrn])).content.decode()
    assert "ICU aware" in html and "No open alerts" in html
    assert Alert.objects.filter(pk=alert.pk).exists()


def test_model_pages_and_activation(hema_client, hematologist, ward_patient):
    draft = ScoreModel.objects.create(
        name="local-v1",
        provenance="edited",
        status=ModelStatus.DRAFT,
        spec={**model_spec_to_dict(PROVISIONAL_V0), "name": "local-v1"},
    )
    html = hema_client.get(reverse("scoring:model-list")).content.decode()
    assert "provisional-v0" in html and "local-v1" in html
    html = hema_client.get(reverse("scoring:model-detail", args=["provisional-v0"])).content.decode()
    assert "not the published weights" in html
    assert "55.5 s" in html
    url = reverse("scoring:model-activate", args=["local-v1"])
    assert hema_client.get(url).status_code == 405
    hema_client.post(url, {})
    draft.refresh_from_db()
    assert draft.status == ModelStatus.DRAFT
    hema_client.post(url, {"confirm": "1"})  # a form without the revision it was read at
    draft.refresh_from_db()
    assert draft.status == ModelStatus.DRAFT
    response = hema_client.post(url, {"confirm": "1", "revision": str(draft.revision + 1)})  # stale
    stale_job = Job.objects.get()
    assert response["Location"] == stale_job.get_absolute_url()
    run_queued_jobs()
    stale_job.refresh_from_db()
    draft.refresh_from_db()
    assert draft.status == ModelStatus.DRAFT
    assert stale_job.status == Job.Status.FAILED and stale_job.errors
    html = hema_client.get(stale_job.get_absolute_url()).content.decode()
    assert "nothing of it was applied" in html and stale_job.errors[0] in html
    response = hema_client.post(url, {"confirm": "1", "revision": str(draft.revision)})
    assert response.status_code == 302
    job = Job.objects.exclude(pk=stale_job.pk).get()
    assert response["Location"] == job.get_absolute_url()
    # Queued, not yet run: the active version has not changed, and the page refreshes itself.
    draft.refresh_from_db()
    assert draft.status == ModelStatus.DRAFT and job.status == Job.Status.QUEUED
    html = hema_client.get(job.get_absolute_url()).content.decode()
    assert 'http-equiv="refresh"' in html and "Waiting for a worker" in html
    assert hema_client.post(url, {"confirm": "1", "revision": str(draft.revision)}).status_code == 302
    assert Job.objects.count() == 2  # a second activation while one is queued is refused
    run_queued_jobs()
    draft.refresh_from_db()
    job.refresh_from_db()
    assert draft.status == ModelStatus.ACTIVE
    assert job.status == Job.Status.SUCCEEDED and job.started_by.username == "hema"
    assert job.result == {"model": "local-v1", "patients": 1}
    html = hema_client.get(job.get_absolute_url()).content.decode()
    assert "local-v1 is now active; 1 patient was recomputed." in html
    assert 'http-equiv="refresh"' not in html
    assert PatientSummary.objects.filter(patient=ward_patient, model=draft).exists()
    assert hema_client.get(reverse("scoring:model-detail", args=["nope"])).status_code == 404


def test_site_parameters_change_is_audited_and_recomputes(hema_client, ward_patient):
    url = reverse("scoring:site-parameters")
    params = SiteParameters.load()
    data = {
        "bcell_threshold": "0",
        "regeneration_window_days": "60",
        "confirm_regeneration": "on",
        "crs_outcome_window": "30",
        "default_care_team": "",
        "version": str(params.version),
        "reason": "",
    }
    response = hema_client.post(url, data)
    assert response.status_code == 200
    assert b'id="id_reason_error"' in response.content
    response = hema_client.post(url, {**data, "regeneration_window_days": "0", "reason": "x"})
    assert response.status_code == 200
    assert SiteParameters.load().regeneration_window_days == 45
    response = hema_client.post(url, {**data, "reason": "local protocol"})
    assert response.status_code == 302
    job = Job.objects.get(kind=Job.Kind.SITE_PARAMETERS)
    assert response["Location"] == job.get_absolute_url()
    assert SiteParameters.load().regeneration_window_days == 45  # not before the job runs
    run_queued_jobs()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.progress_done == job.progress_total == 1
    params = SiteParameters.load()
    assert params.regeneration_window_days == 60
    assert params.history.first().history_change_reason == "local protocol"
    assert_stored_equals_scratch(ward_patient)
