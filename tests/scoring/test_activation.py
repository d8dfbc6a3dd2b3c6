"""Model activation in committed chunks (SPEC 5): progress, entries meanwhile, failure, one at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from patients import services as patient_services
from patients.models import Patient
from scoring import services
from scoring.models import (
    ACTIVATION_STALE_AFTER,
    Alert,
    DailyAssessment,
    ModelStatus,
    PatientSummary,
    ScoreModel,
)
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db


@pytest.fixture
def ward(clinician, team) -> list[Patient]:
    """Three patients with a high day-7 panel under provisional-v0's MRD factor."""
    patients = []
    for i in range(3):
        p = patient_services.patient_register(
            user=clinician,
            mrn=f"ACT{i}",
            name=f"Activation {i}",
            infusion_date=date(2025, 3, 1),
            care_team=team,
            baseline_mrd_pct=Decimal(12),
        )
        patient_services.lab_panel_record(
            user=clinician,
            patient=p,
            collected_at=datetime(2025, 3, 8, 8, tzinfo=UTC),
            entries=[patient_services.LabEntry("crp", "250"), patient_services.LabEntry("ferritin", "12000")],
            confirmed=True,
        )
        patients.append(p)
    return patients


@pytest.fixture
def draft(hematologist) -> ScoreModel:
    """A version whose day-7 high band starts lower, so its day-7 alerts differ."""
    source = ScoreModel.objects.active()
    spec = {**source.spec, "intermediate_from": 1, "high_from": 2}
    return services.score_model_create_draft(
        user=hematologist, source=source, name="site-v1", provenance="edited", spec=spec
    )


def test_activation_reports_progress_chunk_by_chunk(monkeypatch, hematologist, ward, draft):
    monkeypatch.setattr(services, "ACTIVATION_CHUNK", 1)
    progress: list[tuple[int, int]] = []
    count = services.score_model_activate(
        model=draft, user=hematologist, on_progress=lambda d, t: progress.append((d, t))
    )
    assert count == 3
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]
    draft.refresh_from_db()
    assert draft.status == ModelStatus.ACTIVE and draft.activation_started_at is None
    for p in ward:
        assert_stored_equals_scratch(p)


def test_old_version_stays_active_until_every_patient_has_results(monkeypatch, hematologist, ward, draft):
    monkeypatch.setattr(services, "ACTIVATION_CHUNK", 1)
    seen = []

    def check(done: int, total: int) -> None:
        seen.append((ScoreModel.objects.active().name, PatientSummary.objects.filter(model=draft).count()))

    services.score_model_activate(model=draft, user=hematologist, on_progress=check)
    assert seen == [
        ("provisional-v0", 0),
        ("provisional-v0", 1),
        ("provisional-v0", 2),
        ("provisional-v0", 3),
    ]


def test_an_entry_made_while_activation_runs_ends_up_in_the_new_results(
    monkeypatch, clinician, hematologist, ward, draft
):
    monkeypatch.setattr(services, "ACTIVATION_CHUNK", 1)
    first = ward[0]

    def enter(done: int, total: int) -> None:
        if done == 2:  # the first patient's chunk is committed already
            patient_services.lab_record(
                user=clinician,
                patient=first,
                analyte="il6",
                value="900",
                collected_at=datetime(2025, 3, 9, 8, tzinfo=UTC),
            )

    services.score_model_activate(model=draft, user=hematologist, on_progress=enter)
    assert DailyAssessment.objects.filter(patient=first, model=draft, day=8).exists()
    for p in ward:
        assert_stored_equals_scratch(p)


def test_the_switch_swaps_the_day7_alerts(hematologist, ward, draft):
    # Under provisional-v0 the panel scores 3 points (intermediate); under the draft, high.
    assert not Alert.objects.filter(kind="day7_high", resolved_at=None).exists()
    services.score_model_activate(model=draft, user=hematologist)
    alerts = Alert.objects.filter(kind="day7_high", resolved_at=None)
    assert {a.patient_id for a in alerts} == {p.pk for p in ward}
    assert {a.params["model"] for a in alerts} == {"site-v1"}


def test_a_failed_activation_deletes_its_results_and_keeps_the_old_version(
    monkeypatch, hematologist, ward, draft
):
    monkeypatch.setattr(services, "ACTIVATION_CHUNK", 1)

    def fail(done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("worker stopped")

    with pytest.raises(RuntimeError):
        services.score_model_activate(model=draft, user=hematologist, on_progress=fail)
    draft.refresh_from_db()
    assert draft.status == ModelStatus.DRAFT and draft.activation_started_at is None
    assert ScoreModel.objects.active().name == "provisional-v0"
    assert not DailyAssessment.objects.filter(model=draft).exists()
    assert not PatientSummary.objects.filter(model=draft).exists()
    for p in ward:
        assert_stored_equals_scratch(p)


def test_the_draft_is_frozen_and_no_second_activation_starts_while_one_runs(hematologist, ward, draft):
    other = services.score_model_create_draft(
        user=hematologist, source=draft, name="site-v2", provenance="edited"
    )
    refusals: list[str] = []

    def meddle(done: int, total: int) -> None:
        if done:
            return
        for attempt in (
            lambda: services.score_model_update(
                user=hematologist, model=draft, expected_revision=None, reason="tweak", description="x"
            ),
            lambda: services.score_model_activate(model=other, user=hematologist),
            lambda: services.score_model_retire(user=hematologist, model=draft, reason="no"),
        ):
            with pytest.raises(ValidationError) as exc:
                attempt()
            refusals.append(exc.value.messages[0])

    services.score_model_activate(model=draft, user=hematologist, on_progress=meddle)
    assert len(refusals) == 3
    assert "being activated" in refusals[1]
    other.refresh_from_db()
    assert other.status == ModelStatus.DRAFT


def test_a_stale_activation_of_another_version_blocks_nothing(hematologist, ward, draft):
    """A mark older than the stale limit was left by a killed worker: ignored, whatever the model."""
    source = ScoreModel.objects.active()
    other = services.score_model_create_draft(
        user=hematologist, source=source, name="site-v2", provenance="edited", spec=source.spec
    )
    stale = timezone.now() - ACTIVATION_STALE_AFTER - timedelta(minutes=1)
    ScoreModel.objects.filter(pk=other.pk).update(activation_started_at=stale)
    # A write does not recompute under the stale version ...
    patient_services.lab_panel_record(
        user=hematologist,
        patient=ward[0],
        collected_at=datetime(2025, 3, 9, 8, tzinfo=UTC),
        entries=[patient_services.LabEntry("crp", "20")],
        confirmed=True,
    )
    assert not PatientSummary.objects.filter(model=other).exists()
    # ... and the activation of another version goes ahead.
    services.score_model_activate(model=draft, user=hematologist)
    draft.refresh_from_db()
    assert draft.status == ModelStatus.ACTIVE
    for p in ward:
        assert_stored_equals_scratch(p)


def test_a_fresh_activation_of_the_same_version_is_refused_unless_resumed(hematologist, ward, draft):
    services._activation_start(draft, None)
    with pytest.raises(ValidationError) as exc:
        services.score_model_activate(model=draft, user=hematologist)
    assert exc.value.code == "activation_running"
    services.score_model_activate(model=draft, user=hematologist, resume=True)
    draft.refresh_from_db()
    assert draft.status == ModelStatus.ACTIVE and draft.activation_started_at is None
