"""API clients authenticated by token, one per role."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from crsrisk.accounts.tokens import token_create
from patients.models import CareTeam, Patient
from tests.conftest import make_user


def token_client(user: User) -> APIClient:
    """A client that sends ``Authorization: Token …``, as a script would."""
    client = APIClient()
    client.default_format = "json"  # bodies are JSON, as every API client sends them
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user)}")
    return client


def at(day: int, hour: int = 8) -> str:
    """ISO time of ``day`` after the 2025-03-01 infusion of the fixture patient (UTC site)."""
    return datetime(2025, 3, 1 + day, hour, tzinfo=UTC).isoformat()


@pytest.fixture
def clin_api(clinician: User) -> APIClient:
    return token_client(clinician)


@pytest.fixture
def hema_api(hematologist: User) -> APIClient:
    return token_client(hematologist)


@pytest.fixture
def admin_api(site_admin: User) -> APIClient:
    return token_client(site_admin)


@pytest.fixture
def outsider_api(other_team: CareTeam) -> APIClient:
    """A clinician of another care team."""
    return token_client(make_user("other-clin", "clinician", (other_team,)))


@pytest.fixture
def other_patient(clinician: User, other_team: CareTeam) -> Patient:
    from datetime import date

    from patients import services

    return services.patient_register(
        user=clinician, mrn="Q900", name="Other Ward", infusion_date=date(2025, 3, 1), care_team=other_team
    )
