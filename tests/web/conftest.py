"""Fixtures of the web tests: logged-in clients per role, a day-7 patient."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from patients import services
from patients.models import CareTeam, Patient
from scoring.services import site_zone
from tests.conftest import make_user


@pytest.fixture
def clin_client(client: Client, clinician: User) -> Client:
    client.force_login(clinician)
    return client


@pytest.fixture
def hema_client(hematologist: User) -> Client:
    c = Client()
    c.force_login(hematologist)
    return c


@pytest.fixture
def site_admin_client(site_admin: User) -> Client:
    c = Client()
    c.force_login(site_admin)
    return c


@pytest.fixture
def outsider_client(other_team: CareTeam) -> Client:
    """A clinician of another care team."""
    c = Client()
    c.force_login(make_user("outsider", "clinician", (other_team,)))
    return c


def register(
    user: User, team: CareTeam, mrn: str, *, day: int = 3, name: str = "Test Patient", **kw
) -> Patient:
    """A patient whose infusion was ``day`` days before today (site time)."""
    return services.patient_register(
        user=user,
        mrn=mrn,
        name=name,
        infusion_date=timezone.localdate() - timedelta(days=day),
        care_team=team,
        **kw,
    )


def at(patient: Patient, day: int, hour: int = 8) -> datetime:
    """``hour`` o'clock (site time) on ``day``; today before that hour, just before now instead.

    The services refuse a collection time in the future, and a run early in the day must
    not fail: the stand-in keeps the day and the order of the hours.
    """
    d = patient.infusion.infusion_date + timedelta(days=day)
    wanted = datetime(d.year, d.month, d.day, hour, tzinfo=site_zone())
    now = timezone.now()
    return wanted if wanted <= now else now - timedelta(microseconds=24 - hour)


@pytest.fixture
def ward_patient(clinician: User, team: CareTeam) -> Patient:
    """On day 3 today."""
    return register(clinician, team, "W001", day=3)


def panel_post(when: date, time: str = "08:00", **values: str) -> dict[str, str]:
    """POST data of the lab panel form; ``crp="250"`` or ``crp=("25", "mg/dL")``."""
    data = {"collected_date": when.isoformat(), "collected_time": time, "note": ""}
    for code, v in values.items():
        value, unit = (v, "") if isinstance(v, str) else v
        data[f"{code}_value"] = value
        data[f"{code}_unit"] = unit
    return data
