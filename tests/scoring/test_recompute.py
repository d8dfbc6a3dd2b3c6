"""The recompute contract (SPEC 4) for every write path of the services."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from patients import services
from patients.models import LabResult
from scoring.models import Alert, DailyAssessment, ModelStatus, PatientSummary, ScoreModel
from scoring.rules.score import PROVISIONAL_V0, model_spec_to_dict
from scoring.services import score_model_activate
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")


def at(day: int, hour: int = 8) -> datetime:
    """A collection time on ``day`` after the 2025-03-01 infusion of the fixture patient."""
    return datetime(2025, 3, 1 + day, hour, tzinfo=UTC) if day < 28 else datetime(2025, 3, 28, tzinfo=UTC)


def day7_panel(user, patient, *, crp: str = "250") -> None:
    services.lab_panel_record(
        user=user,
        patient=patient,
        collected_at=at(7),
        entries=[
            services.LabEntry("anc", "0.2"),
            services.LabEntry("crp", crp),
            services.LabEntry("ferritin", "12000"),
            services.LabEntry("il6", "300"),
            services.LabEntry("aptt", "48"),
        ],
        confirmed=True,
    )


def test_provisional_v0_is_active_and_matches_the_rules_module():
    model = ScoreModel.objects.active()
    assert model.name == "provisional-v0"
    assert model.provenance == "provisional"
    assert model.spec == model_spec_to_dict(PROVISIONAL_V0)


def test_register_stores_day0_row_and_summary(patient):
    rows = DailyAssessment.objects.filter(patient=patient)
    assert [r.day for r in rows] == [0]
    assert rows[0].model.name == "provisional-v0"
    summary = PatientSummary.objects.get(patient=patient)
    assert summary.max_crs_grade == 0
    assert_stored_equals_scratch(patient)


def test_lab_panel_recomputes_day7_score_in_same_transaction(clinician, patient):
    services.patient_update(
        user=clinician,
        patient=patient,
        expected_version=patient.version,
        reason="MRD reported",
        baseline_mrd_pct=Decimal("12"),
        post_ld_mrd_pct=Decimal("3"),
    )
    day7_panel(clinician, patient)
    summary = PatientSummary.objects.get(patient=patient)
    assert (summary.day7_points, summary.day7_band, summary.day7_complete) == (4, "high", True)
    assert Alert.objects.filter(patient=patient, kind="day7_high", day=7, resolved_at=None).exists()
    assert_stored_equals_scratch(patient)


def test_lab_correction_keeps_history_and_resolves_alert(clinician, patient):
    services.patient_update(
        user=clinician, patient=patient, expected_version=1, reason="MRD", baseline_mrd_pct=Decimal(12)
    )
    day7_panel(clinician, patient)
    crp = LabResult.objects.get(patient=patient, analyte="crp")
    services.lab_correct(
        user=clinician, lab=crp, expected_version=crp.version, value="25", unit="mg/L", reason="typo"
    )
    crp.refresh_from_db()
    assert crp.value == Decimal("25")
    assert crp.history.count() == 2
    assert crp.history.first().history_change_reason == "typo"
    assert crp.history.last().value == Decimal("250")
    alert = Alert.objects.get(patient=patient, kind="day7_high")
    assert alert.resolved_at is not None
    assert_stored_equals_scratch(patient)


def test_stale_correction_is_refused_and_changes_nothing(clinician, patient):
    lab = services.lab_record(user=clinician, patient=patient, analyte="crp", value="30", collected_at=at(2))
    services.lab_correct(user=clinician, lab=lab, expected_version=1, value="31", reason="recheck")
    with pytest.raises(services.ConflictError):
        services.lab_correct(user=clinician, lab=lab, expected_version=1, value="99", reason="stale")
    lab.refresh_from_db()
    assert lab.value == Decimal("31")


def test_void_stops_counting_but_keeps_row(clinician, patient):
    lab = services.lab_record(user=clinician, patient=patient, analyte="crp", value="300", collected_at=at(7))
    services.lab_void(user=clinician, lab=lab, expected_version=lab.version, reason="wrong patient")
    assert LabResult.objects.filter(pk=lab.pk).exists()
    summary = PatientSummary.objects.get(patient=patient)
    crp = next(f for f in summary.day7_factors if f["code"] == "crp_d7")
    assert crp["missing"] is True
    assert_stored_equals_scratch(patient)


def test_refused_lab_stores_nothing_and_keeps_results(clinician, patient):
    before = list(DailyAssessment.objects.filter(patient=patient).values())
    with pytest.raises(ValidationError) as exc:
        services.lab_record(
            user=clinician, patient=patient, analyte="crp", value="30", unit="mmol/L", collected_at=at(1)
        )
    assert "mg/L" in str(exc.value)
    assert not LabResult.objects.exists()
    assert list(DailyAssessment.objects.filter(patient=patient).values()) == before


def test_tenfold_jump_needs_confirmation(clinician, patient):
    services.lab_record(user=clinician, patient=patient, analyte="crp", value="20", collected_at=at(1))
    with pytest.raises(services.NeedsConfirmation):
        services.lab_record(user=clinician, patient=patient, analyte="crp", value="200", collected_at=at(2))
    assert LabResult.objects.count() == 1
    services.lab_record(
        user=clinician, patient=patient, analyte="crp", value="200", collected_at=at(2), confirmed=True
    )
    assert LabResult.objects.count() == 2


def test_observation_grade3_raises_alert_and_update_needs_reason(clinician, patient):
    services.observation_record(
        user=clinician,
        patient=patient,
        date=date(2025, 3, 3),
        tmax_c="38.4",
        hypotension="one_vasopressor",
        oxygen="low_flow",
    )
    row = DailyAssessment.objects.get(patient=patient, day=2)
    assert row.crs_grade == 3
    assert Alert.objects.filter(patient=patient, kind="severe_crs", day=2).exists()
    # A writer who never saw the stored row is refused: that would be a lost update.
    with pytest.raises(services.ConflictError):
        services.observation_record(
            user=clinician, patient=patient, date=date(2025, 3, 3), tmax_c="37.0", reason="typo"
        )
    with pytest.raises(ValidationError) as exc:
        services.observation_record(
            user=clinician, patient=patient, date=date(2025, 3, 3), tmax_c="37.0", expected_version=1
        )
    assert "reason" in exc.value.message_dict
    assert DailyAssessment.objects.get(patient=patient, day=2).crs_grade == 3
    obs = services.observation_record(
        user=clinician,
        patient=patient,
        date=date(2025, 3, 3),
        tmax_c="37.0",
        expected_version=1,
        reason="entered on wrong day",
    )
    assert obs.history.count() == 2
    assert DailyAssessment.objects.get(patient=patient, day=2).crs_grade == 0
    assert_stored_equals_scratch(patient)


def test_event_and_override_recompute(hematologist, patient):
    services.observation_record(user=hematologist, patient=patient, date=date(2025, 3, 2), tmax_c="39.0")
    services.grade_override_set(
        user=hematologist, patient=patient, date=date(2025, 3, 2), grade=0, reason="documented infection"
    )
    row = DailyAssessment.objects.get(patient=patient, day=1)
    assert (row.crs_computed_grade, row.crs_grade, row.crs_overridden) == (1, 0, True)
    services.event_record(
        user=hematologist, patient=patient, kind="death", date=date(2025, 3, 5), detail="crs"
    )
    assert PatientSummary.objects.get(patient=patient).max_crs_grade == 5
    assert_stored_equals_scratch(patient)


def test_site_parameter_change_recomputes_everyone(hematologist, patient):
    services.lab_record(user=hematologist, patient=patient, analyte="bcell", value="0", collected_at=at(7))
    services.lab_record(user=hematologist, patient=patient, analyte="bcell", value="3", collected_at=at(20))
    assert PatientSummary.objects.get(patient=patient).bcell_status == "regeneration_suspected"
    services.site_parameters_update(
        user=hematologist, expected_version=1, reason="local policy", confirm_regeneration=False
    )
    summary = PatientSummary.objects.get(patient=patient)
    assert (summary.bcell_status, summary.first_regeneration_day) == ("early_regeneration", 20)
    assert_stored_equals_scratch(patient)


def test_activation_recomputes_under_new_model_and_freezes_old(hematologist, patient):
    services.patient_update(
        user=hematologist, patient=patient, expected_version=1, reason="MRD", baseline_mrd_pct=Decimal(12)
    )
    day7_panel(hematologist, patient)
    old = ScoreModel.objects.active()
    spec = model_spec_to_dict(PROVISIONAL_V0)
    spec["factors"][0]["points"] = 3
    new = ScoreModel.objects.create(name="local-v1", provenance="edited", spec=spec)
    score_model_activate(model=new, user=hematologist)
    old.refresh_from_db()
    assert old.status == ModelStatus.RETIRED
    assert PatientSummary.objects.get(patient=patient, model=new).day7_points == 6
    assert PatientSummary.objects.get(patient=patient, model=old).day7_points == 4
    # A write now recomputes only the active version; the old results stay frozen.
    services.lab_record(user=hematologist, patient=patient, analyte="crp", value="50", collected_at=at(8))
    assert DailyAssessment.objects.filter(patient=patient, model=new, day=8).exists()
    assert not DailyAssessment.objects.filter(patient=patient, model=old, day=8).exists()
    assert_stored_equals_scratch(patient)


def test_infusion_date_change_refused_when_data_would_leave_range(clinician, patient):
    services.lab_record(user=clinician, patient=patient, analyte="crp", value="30", collected_at=at(20))
    with pytest.raises(ValidationError) as exc:
        services.patient_update(
            user=clinician,
            patient=patient,
            expected_version=patient.version,
            reason="wrong date",
            infusion_date=date(2025, 4, 25),
        )
    assert "infusion_date" in exc.value.message_dict
    patient.infusion.refresh_from_db()
    assert patient.infusion.infusion_date == date(2025, 3, 1)


def test_infusion_date_change_moves_every_day(clinician, patient):
    services.lab_record(user=clinician, patient=patient, analyte="crp", value="30", collected_at=at(7))
    services.patient_update(
        user=clinician,
        patient=patient,
        expected_version=patient.version,
        reason="infusion was a day later",
        infusion_date=date(2025, 3, 2),
    )
    assert DailyAssessment.objects.filter(patient=patient).order_by("day").last().day == 6
    assert_stored_equals_scratch(patient)


def test_recompute_once_recomputes_each_patient_once_inside_the_transaction(clinician, patient, monkeypatch):
    from scoring import services as scoring_services

    calls: list[set[int]] = []
    real = scoring_services.recompute_patients

    def spy(ids, **kwargs):
        calls.append(set(ids))
        return real(ids, **kwargs)

    monkeypatch.setattr(scoring_services, "recompute_patients", spy)
    with scoring_services.recompute_once():
        for day in (5, 6, 7):
            services.lab_record(
                user=clinician, patient=patient, analyte="crp", value="40", collected_at=at(day)
            )
        assert calls == []
    assert calls == [{patient.pk}]
    assert DailyAssessment.objects.filter(patient=patient).order_by("day").last().day == 7
    assert_stored_equals_scratch(patient)


def test_recompute_once_rolls_back_everything_on_error(clinician, patient):
    from scoring import services as scoring_services

    with pytest.raises(ValidationError), scoring_services.recompute_once():
        services.lab_record(user=clinician, patient=patient, analyte="crp", value="40", collected_at=at(5))
        services.lab_record(user=clinician, patient=patient, analyte="crp", value="x", collected_at=at(6))
    assert not LabResult.objects.exists()
    assert_stored_equals_scratch(patient)


def test_mrn_register_is_reserved_for_the_registration_page(clinician, team):
    with pytest.raises(ValidationError) as exc:
        services.patient_register(user=clinician, mrn="register", name="X", infusion_date=date(2025, 3, 1))
    assert "register" in str(exc.value.message_dict["mrn"])


def test_a_patient_dies_once(hematologist, patient):
    services.event_record(
        user=hematologist, patient=patient, kind="death", date=date(2025, 3, 5), detail="crs"
    )
    with pytest.raises(ValidationError) as exc:
        services.event_record(
            user=hematologist, patient=patient, kind="death", date=date(2025, 3, 9), detail="other"
        )
    assert "already recorded" in str(exc.value.message_dict["kind"])


@pytest.mark.parametrize("with_cr", [True, False])
def test_a_stored_suspected_regeneration_alert_resolves_only_when_replaced_or_refuted(
    clinician, hematologist, patient, with_cr
):
    for day, value in ((7, "0"), (35, "4")):
        services.lab_record(
            user=clinician,
            patient=patient,
            analyte="bcell",
            value=value,
            collected_at=datetime(2025, 3, 1, 8, tzinfo=UTC) + timedelta(days=day),
        )
    suspected = Alert.objects.get(patient=patient, kind="bcell_regeneration_suspected", day=35)
    assert suspected.resolved_at is None
    if with_cr:
        services.event_record(user=hematologist, patient=patient, kind="cr", date=date(2025, 3, 29))
    services.lab_record(
        user=clinician,
        patient=patient,
        analyte="bcell",
        value="6",
        collected_at=datetime(2025, 3, 1, 8, tzinfo=UTC) + timedelta(days=42),
    )
    suspected.refresh_from_db()
    if with_cr:
        # The early-regeneration alert replaces it.
        assert suspected.resolved_at is not None
        assert Alert.objects.get(patient=patient, kind="bcell_early_regeneration").resolved_at is None
    else:
        # Confirmed, and no other alert speaks for it: the suspected alert stays open.
        assert suspected.resolved_at is None
    assert_stored_equals_scratch(patient)
