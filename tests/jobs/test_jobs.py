"""Background jobs: queued by a hematologist, run by a worker, read on the job page (issue 11)."""

from __future__ import annotations

import inspect
from datetime import date
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import OperationalError
from django.urls import reverse

from crsrisk.jobs import services as job_services
from crsrisk.jobs.models import Job
from patients import services as patient_services
from patients.demo import seed_demo
from scoring import services as scoring_services
from scoring.models import ModelStatus, Provenance, ScoreModel
from scoring.rules.score import PROVISIONAL_V0, model_spec_to_dict
from tests.conftest import run_queued_jobs
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db

TODAY = date(2026, 1, 15)


@pytest.fixture
def ward_patient(hematologist, team):
    return patient_services.patient_register(
        user=hematologist, mrn="J001", name="Job Patient", infusion_date=date(2025, 3, 1), care_team=team
    )


def _draft(name: str = "local-v1") -> ScoreModel:
    return ScoreModel.objects.create(
        name=name,
        provenance="edited",
        status=ModelStatus.DRAFT,
        spec={**model_spec_to_dict(PROVISIONAL_V0), "name": name},
    )


def test_fit_from_the_model_card_stores_the_draft_and_report_as_the_command_does(client):
    seed_demo(today=TODAY, password="demo-password-2025!")
    client.force_login(User.objects.get(username="demo-hematologist"))
    card = client.get(reverse("scoring:model-detail", args=["provisional-v0"])).content.decode()
    assert "Fit on the local cohort" in card and 'action="/scoring/fit/"' in card
    count = ScoreModel.objects.count()

    # A bad field is refused on the card with the input kept, and nothing is queued.
    response = client.post(reverse("scoring:model-fit"), {"bootstrap": "20", "seed": "1", "name": "x y"})
    assert response.status_code == 400
    assert 'id="id_bootstrap_error"' in response.content.decode()
    assert 'id="id_name_error"' in response.content.decode()
    assert not Job.objects.exists()

    # The default base B gives ferritin thousands of points: the job fails, says what to try,
    # and stores nothing.
    response = client.post(reverse("scoring:model-fit"), {"bootstrap": "200", "seed": "1", "name": "web-fit"})
    job = Job.objects.get()
    assert response["Location"] == job.get_absolute_url()
    assert job.params["name"] == "web-fit" and job.params["bootstrap"] == 200
    job.params["bootstrap"] = 10  # a short fit for the test; the form asks for at least 200
    job.save()
    run_queued_jobs()
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "rerun with --base" in job.errors[0]
    assert ScoreModel.objects.count() == count
    html = client.get(job.get_absolute_url()).content.decode()
    assert "nothing of it was applied" in html and "Not fitted" in html

    # With a base the job stores the draft with its report, exactly as fit_model does.
    job = job_services.job_start(
        kind=Job.Kind.MODEL_FIT,
        user=job.started_by,
        params={"landmark": False, "name": "web-fit", "bootstrap": 10, "seed": 7, "base": 1.0},
    )
    run_queued_jobs()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.errors
    assert job.progress_note  # the engine's last progress line
    web = ScoreModel.objects.get(name="web-fit")
    assert web.status == ModelStatus.DRAFT and web.provenance == Provenance.FITTED
    assert web.derived_from == ScoreModel.objects.active()
    assert job.result["model"] == "web-fit" and job.result["patients"] == web.fit_report["cohort"]["analysed"]
    call_command(
        "fit_model", "--name", "cli-fit", "--base", "1", "--bootstrap", "10", "--seed", "7",
        "--user", "demo-hematologist", stderr=StringIO(),
    )  # fmt: skip
    cli = ScoreModel.objects.get(name="cli-fit")

    def same(report: dict) -> dict:
        return {k: v for k, v in report.items() if k not in ("fitted_at",)}

    assert same(web.fit_report) == same(cli.fit_report)
    assert [{**f, "label": None} for f in web.spec["factors"]] == [
        {**f, "label": None} for f in cli.spec["factors"]
    ]
    assert web.description == cli.description
    assert web.history.first().history_user.username == "demo-hematologist"
    html = client.get(job.get_absolute_url()).content.decode()
    assert "Draft web-fit stored" in html and reverse("scoring:model-report", args=["web-fit"]) in html
    assert ScoreModel.objects.get(name="provisional-v0").status == ModelStatus.ACTIVE


def test_activation_job_reports_progress_when_the_activation_offers_it(
    hematologist, ward_patient, monkeypatch
):
    draft = _draft()
    job = job_services.job_start(
        kind=Job.Kind.MODEL_ACTIVATION,
        user=hematologist,
        params={"model_id": draft.pk, "revision": draft.revision},
    )
    seen: list[tuple[int, int]] = []
    accepts = "on_progress" in inspect.signature(scoring_services.score_model_activate).parameters
    write = job_services.ProgressChannel.progress

    def spy(channel: job_services.ProgressChannel, done: int, total: int) -> None:
        seen.append((done, total))  # observe the calls; the real write follows
        write(channel, done, total)

    monkeypatch.setattr(job_services.ProgressChannel, "progress", spy)
    run_queued_jobs()
    job.refresh_from_db()
    draft.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and draft.status == ModelStatus.ACTIVE
    assert (job.progress_done, job.progress_total) == (1, 1)
    assert seen[-1] == (1, 1)
    if accepts:  # the chunked activation reports before the end too
        assert len(seen) >= 2
    assert_stored_equals_scratch(ward_patient)


def test_a_job_interrupted_by_the_database_runs_again_from_the_start(hematologist, ward_patient, monkeypatch):
    """The action's transaction rolled back: the job waits for the database and starts over."""
    draft = _draft()
    job = job_services.job_start(
        kind=Job.Kind.MODEL_ACTIVATION,
        user=hematologist,
        params={"model_id": draft.pk, "revision": draft.revision},
    )
    calls = []
    real = job_services.RUNNERS[Job.Kind.MODEL_ACTIVATION]

    def flaky(job, progress, note):
        calls.append(job.attempts)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(job, progress, note)

    monkeypatch.setitem(job_services.RUNNERS, Job.Kind.MODEL_ACTIVATION, flaky)
    monkeypatch.setattr(job_services, "_wait_for_database", lambda seconds: None)
    run_queued_jobs()
    job.refresh_from_db()
    draft.refresh_from_db()
    assert calls == [1, 2]
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 2
    assert draft.status == ModelStatus.ACTIVE


def test_a_job_delivered_again_too_often_is_marked_failed_with_nothing_applied(hematologist, settings):
    draft = _draft()
    job = job_services.job_start(
        kind=Job.Kind.MODEL_ACTIVATION,
        user=hematologist,
        params={"model_id": draft.pk, "revision": draft.revision},
    )
    # Three workers were killed while running it: each claim counted an attempt.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, attempts=settings.JOB_MAX_ATTEMPTS)
    run_queued_jobs()
    job.refresh_from_db()
    draft.refresh_from_db()
    assert job.status == Job.Status.FAILED and "interrupted" in job.errors[0]
    assert draft.status == ModelStatus.DRAFT
    assert ScoreModel.objects.active().name == "provisional-v0"


def test_job_pages_are_for_hematologists(client, clinician, hematologist):
    job = Job.objects.create(kind=Job.Kind.SITE_PARAMETERS, started_by=hematologist)
    client.force_login(clinician)
    assert client.get(job.get_absolute_url()).status_code == 403
    assert client.get(reverse("jobs:list")).status_code == 403
    client.force_login(hematologist)
    html = client.get(reverse("jobs:list")).content.decode()
    assert job.get_absolute_url() in html and "site parameter change" in html


def test_an_activation_killed_mid_way_resumes_when_the_job_is_delivered_again(
    hematologist, ward_patient, monkeypatch
):
    """The worker died after the mark and some chunks committed, so the cleanup never ran."""
    draft = _draft()
    job = job_services.job_start(
        kind=Job.Kind.MODEL_ACTIVATION,
        user=hematologist,
        params={"model_id": draft.pk, "revision": draft.revision},
    )
    real = job_services.RUNNERS[Job.Kind.MODEL_ACTIVATION]

    def killed_first(job, progress, note):
        if job.attempts == 1:
            started = scoring_services._activation_start(draft, draft.revision)
            scoring_services.recompute_patients([ward_patient.pk], model=started)  # a committed chunk
            raise OperationalError("server closed the connection unexpectedly")
        return real(job, progress, note)

    monkeypatch.setitem(job_services.RUNNERS, Job.Kind.MODEL_ACTIVATION, killed_first)
    monkeypatch.setattr(job_services, "_wait_for_database", lambda seconds: None)
    run_queued_jobs()
    job.refresh_from_db()
    draft.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 2, job.errors
    assert draft.status == ModelStatus.ACTIVE and draft.activation_started_at is None
    assert_stored_equals_scratch(ward_patient)
