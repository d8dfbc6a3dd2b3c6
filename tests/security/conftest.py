"""Fixtures for the security tests: a patient of another team, a lab value."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User

from patients import services
from patients.models import CareTeam, LabResult, Patient
from tests.conftest import make_user


@pytest.fixture
def other_clinician(other_team: CareTeam) -> User:
    return make_user("clin9", "clinician", (other_team,))


@pytest.fixture
def lab(patient: Patient, clinician: User) -> LabResult:
    return services.lab_record(
        user=clinician,
        patient=patient,
        analyte="crp",
        value="12",
        unit="mg/L",
        collected_at=datetime(2025, 3, 2, 8, 0, tzinfo=ZoneInfo("UTC")),
    )


@pytest.fixture
def infusion_day() -> date:
    return date(2025, 3, 1)
