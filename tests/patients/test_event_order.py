"""Events and grade overrides are recorded once, in an order that can happen (issue 8, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from patients import imports, services
from patients.models import ClinicalEvent, GradeOverride, LabResult, Observation
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db


def _day(patient, n):
    return patient.infusion.infusion_date + timedelta(days=n)


def _event(user, patient, kind, n, detail=""):
    return services.event_record(user=user, patient=patient, kind=kind, date=_day(patient, n), detail=detail)


def _refusal(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return " ".join(m for ms in exc.value.message_dict.values() for m in ms)


def test_the_same_event_on_the_same_date_is_refused_naming_the_recorded_one(hematologist, patient):
    _event(hematologist, patient, "last_follow_up", 30)
    with pytest.raises(ValidationError) as exc:
        _event(hematologist, patient, "last_follow_up", 30)
    assert "last follow-up" in _refusal(exc) and _day(patient, 30).isoformat() in _refusal(exc)
    assert ClinicalEvent.objects.count() == 1


def test_the_same_kind_with_another_detail_on_that_date_is_a_different_event(hematologist, patient):
    _event(hematologist, patient, "preemptive_therapy", 40, "anti_leukemic")
    _event(hematologist, patient, "preemptive_therapy", 40, "immunomodulatory")
    assert ClinicalEvent.objects.count() == 2


def test_a_voided_event_can_be_recorded_again(hematologist, patient):
    event = _event(hematologist, patient, "relapse", 60)
    services.event_void(user=hematologist, event=event, expected_version=event.version, reason="wrong day")
    _event(hematologist, patient, "relapse", 60)
    assert ClinicalEvent.objects.active().count() == 1


def test_remission_relapse_remission_is_allowed(hematologist, patient):
    _event(hematologist, patient, "cr", 28)
    _event(hematologist, patient, "relapse", 90)
    _event(hematologist, patient, "cr", 150)
    assert ClinicalEvent.objects.filter(kind="cr").count() == 2
    assert_stored_equals_scratch(patient)


@pytest.mark.parametrize("second_day", [60, 14])
def test_a_second_remission_without_a_relapse_between_is_refused(hematologist, patient, second_day):
    _event(hematologist, patient, "cr", 28)
    with pytest.raises(ValidationError) as exc:
        _event(hematologist, patient, "cr", second_day)
    text = _refusal(exc)
    assert "complete remission" in text and _day(patient, 28).isoformat() in text
    assert ClinicalEvent.objects.count() == 1


def test_a_remission_before_a_relapse_that_follows_another_remission_is_refused(hematologist, patient):
    _event(hematologist, patient, "cr", 28)
    _event(hematologist, patient, "relapse", 90)
    # Day 60 lies between the remission of day 28 and the relapse: two remissions in a row.
    with pytest.raises(ValidationError):
        _event(hematologist, patient, "cr", 60)


def test_events_on_the_date_of_death_are_allowed_and_later_ones_refused(hematologist, patient):
    _event(hematologist, patient, "death", 20, "other")
    _event(hematologist, patient, "last_follow_up", 20)
    with pytest.raises(ValidationError) as exc:
        _event(hematologist, patient, "relapse", 21)
    text = _refusal(exc)
    assert "death" in text and _day(patient, 20).isoformat() in text
    assert ClinicalEvent.objects.count() == 2


def test_labs_and_observations_after_the_death_are_refused(hematologist, patient):
    _event(hematologist, patient, "death", 2, "crs")
    with pytest.raises(ValidationError) as exc:
        services.observation_record(user=hematologist, patient=patient, date=_day(patient, 3), tmax_c="38.5")
    assert _day(patient, 2).isoformat() in _refusal(exc)
    with pytest.raises(ValidationError) as exc:
        services.lab_record(
            user=hematologist,
            patient=patient,
            analyte="crp",
            value="40",
            unit="mg/L",
            collected_at=datetime.combine(_day(patient, 3), datetime.min.time(), UTC) + timedelta(hours=12),
        )
    assert _day(patient, 2).isoformat() in _refusal(exc)
    # The day of death itself still takes them.
    services.observation_record(user=hematologist, patient=patient, date=_day(patient, 2), tmax_c="39.5")
    assert Observation.objects.count() == 1 and not LabResult.objects.exists()


def test_a_grade_override_after_the_death_is_refused(hematologist, patient):
    services.observation_record(user=hematologist, patient=patient, date=_day(patient, 3), tmax_c="38.5")
    _event(hematologist, patient, "death", 3, "other")
    with pytest.raises(ValidationError):
        services.grade_override_set(
            user=hematologist, patient=patient, date=_day(patient, 4), grade=2, reason="x"
        )


def test_a_death_dated_before_recorded_events_is_refused(hematologist, patient):
    _event(hematologist, patient, "cr", 28)
    with pytest.raises(ValidationError) as exc:
        _event(hematologist, patient, "death", 20, "other")
    text = _refusal(exc)
    assert "complete remission" in text and _day(patient, 28).isoformat() in text
    assert not ClinicalEvent.objects.filter(kind="death").exists()


def test_a_death_dated_before_recorded_observations_is_refused(hematologist, patient):
    services.observation_record(user=hematologist, patient=patient, date=_day(patient, 5), tmax_c="37.0")
    with pytest.raises(ValidationError) as exc:
        _event(hematologist, patient, "death", 4, "other")
    assert _day(patient, 5).isoformat() in _refusal(exc)


def test_the_same_grade_override_twice_is_refused_and_a_new_grade_replaces_it(hematologist, patient):
    services.observation_record(user=hematologist, patient=patient, date=_day(patient, 1), tmax_c="38.9")
    services.grade_override_set(
        user=hematologist, patient=patient, date=_day(patient, 1), grade=0, reason="inf"
    )
    with pytest.raises(ValidationError) as exc:
        services.grade_override_set(
            user=hematologist, patient=patient, date=_day(patient, 1), grade=0, reason="inf"
        )
    assert _day(patient, 1).isoformat() in _refusal(exc)
    assert GradeOverride.objects.count() == 1
    services.grade_override_set(
        user=hematologist, patient=patient, date=_day(patient, 1), grade=2, reason="O2"
    )
    assert GradeOverride.objects.active().get().grade == 2


def test_refusals_are_translated(hematologist, patient):
    _event(hematologist, patient, "cr", 28)
    with translation.override("zh-hans"), pytest.raises(ValidationError) as exc:
        _event(hematologist, patient, "cr", 28)
    assert "完全缓解" in _refusal(exc) or "缓解" in _refusal(exc)


def test_a_csv_reimport_of_identical_event_rows_is_skipped(hematologist, patient):
    csv = f"mrn,date,event,detail\n{patient.mrn},{_day(patient, 28)},cr,\n"
    first = imports.run_import(imports.EVENTS, csv.encode(), filename="events.csv", user=hematologist)
    assert not first.errors and first.created == 1
    again = imports.run_import(imports.EVENTS, csv.encode(), filename="events.csv", user=hematologist)
    assert not again.errors and again.created == 0 and again.skipped == 1
    assert ClinicalEvent.objects.count() == 1


def test_a_csv_import_follows_the_order_rules(hematologist, patient):
    _event(hematologist, patient, "death", 20, "other")
    csv = f"mrn,date,event,detail\n{patient.mrn},{_day(patient, 28)},cr,\n"
    report = imports.run_import(imports.EVENTS, csv.encode(), filename="events.csv", user=hematologist)
    assert report.errors and _day(patient, 20).isoformat() in report.errors[0].reason
    csv = (
        f"mrn,date,event,detail\n{patient.mrn},{_day(patient, 5)},cr,\n{patient.mrn},{_day(patient, 9)},cr,\n"
    )
    report = imports.run_import(imports.EVENTS, csv.encode(), filename="events.csv", user=hematologist)
    assert report.errors
    assert ClinicalEvent.objects.count() == 1


def test_a_death_dated_before_a_recorded_grade_override_is_refused(hematologist, patient):
    services.grade_override_set(
        user=hematologist, patient=patient, date=_day(patient, 6), grade=1, reason="documented"
    )
    with pytest.raises(ValidationError) as exc:
        _event(hematologist, patient, "death", 5, "other")
    assert _day(patient, 6).isoformat() in _refusal(exc)


def test_a_csv_death_dated_before_a_recorded_grade_override_is_refused(hematologist, patient):
    services.grade_override_set(
        user=hematologist, patient=patient, date=_day(patient, 6), grade=1, reason="documented"
    )
    csv = f"mrn,date,event,detail\n{patient.mrn},{_day(patient, 5)},death,other\n"
    report = imports.run_import(imports.EVENTS, csv.encode(), filename="events.csv", user=hematologist)
    assert report.errors and _day(patient, 6).isoformat() in report.errors[0].reason
    assert not ClinicalEvent.objects.filter(kind="death").exists()
