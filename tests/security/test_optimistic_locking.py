"""A correction made from a stale version is refused and changes nothing (SPEC 7)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from patients import services
from patients.models import LabResult, Patient
from scoring.models import DailyAssessment


def snapshot(patient: Patient) -> list[tuple]:
    return list(
        DailyAssessment.objects.filter(patient=patient).order_by("day").values_list("day", "points", "band")
    )


def test_stale_correction_is_refused_with_a_clear_message_and_changes_nothing(
    lab: LabResult, clinician: User, hematologist: User
) -> None:
    opened = lab.version
    services.lab_correct(
        user=hematologist, lab=lab, expected_version=opened, value="20", unit="mg/L", reason="typo"
    )
    lab.refresh_from_db()
    history_before = lab.history.count()
    derived_before = snapshot(lab.patient)
    with pytest.raises(services.ConflictError) as exc:
        services.lab_correct(
            user=clinician, lab=lab, expected_version=opened, value="35", unit="mg/L", reason="my edit"
        )
    message = " ".join(exc.value.messages)
    assert "changed by someone else" in message and "Nothing was saved" in message
    lab.refresh_from_db()
    assert lab.value == 20 and lab.version == opened + 1
    assert lab.history.count() == history_before
    assert snapshot(lab.patient) == derived_before


def test_stale_void_is_refused(lab: LabResult, clinician: User) -> None:
    opened = lab.version
    services.lab_correct(
        user=clinician, lab=lab, expected_version=opened, value="20", unit="mg/L", reason="typo"
    )
    with pytest.raises(services.ConflictError):
        services.lab_void(user=clinician, lab=lab, expected_version=opened, reason="wrong patient")
    lab.refresh_from_db()
    assert not lab.is_voided


def test_stale_correction_through_the_form_shows_the_conflict(
    client: Client, lab: LabResult, clinician: User
) -> None:
    opened = lab.version
    services.lab_correct(
        user=clinician, lab=lab, expected_version=opened, value="20", unit="mg/L", reason="typo"
    )
    client.force_login(clinician)
    response = client.post(
        reverse("patients:lab-correct", args=[lab.patient.mrn, lab.pk]),
        {
            "value": "35",
            "unit": "mg/L",
            "collected_date": "2025-03-02",
            "collected_time": "09:00",
            "version": opened,
            "reason": "my edit",
        },
    )
    assert response.status_code == 200
    assert "changed by someone else" in response.content.decode()
    lab.refresh_from_db()
    assert lab.value == 20
