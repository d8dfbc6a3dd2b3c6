"""Markup in names, notes, usernames and team names is shown as text (SPEC 9)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from crsrisk.accounts import services as account_services
from patients import services
from patients.models import CareTeam, Patient
from tests.conftest import make_user

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


@pytest.fixture
def evil_patient(clinician: User, team: CareTeam) -> Patient:
    patient = services.patient_register(
        user=clinician, mrn="X001", name=SCRIPT, infusion_date=date(2025, 3, 1), care_team=team
    )
    services.lab_record(
        user=clinician,
        patient=patient,
        analyte="crp",
        value="12",
        unit="mg/L",
        collected_at=datetime(2025, 3, 2, 8, 0, tzinfo=ZoneInfo("UTC")),
        note=IMG,
    )
    return patient


def assert_escaped(html: str) -> None:
    assert SCRIPT not in html and IMG not in html
    assert "alert(1)" not in html or "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("name", ["patients:detail", "patients:history"])
def test_patient_pages_escape_name_and_notes(
    client: Client, clinician: User, evil_patient: Patient, name: str
) -> None:
    client.force_login(clinician)
    response = client.get(reverse(name, args=[evil_patient.mrn]))
    assert response.status_code == 200
    html = response.content.decode()
    assert_escaped(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_ward_list_escapes_the_name(client: Client, clinician: User, evil_patient: Patient) -> None:
    client.force_login(clinician)
    response = client.get(reverse("patients:ward"))
    assert response.status_code == 200
    assert_escaped(response.content.decode())


def test_security_audit_escapes_a_hostile_username(client: Client, site_admin: User, db: None) -> None:
    client.post(reverse("accounts:login"), {"username": SCRIPT, "password": "x" * 12})
    client.force_login(site_admin)
    html = client.get(reverse("accounts:security-audit")).content.decode()
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_user_pages_escape_a_hostile_team_name(client: Client, site_admin: User, db: None) -> None:
    team = CareTeam.objects.create(name=IMG)
    account_services.user_create(
        actor=site_admin,
        username="nurse",
        password="violet-kettle-harbour-42",
        role="clinician",
        care_teams=[team],
    )
    client.force_login(site_admin)
    for url in (reverse("accounts:user-list"), reverse("accounts:user-create")):
        html = client.get(url).content.decode()
        assert IMG not in html and "&lt;img src=x" in html


def test_approval_page_escapes_a_hostile_team_name(client: Client, site_admin: User, db: None) -> None:
    team = CareTeam.objects.create(name=IMG)
    account_services.user_create(
        actor=site_admin,
        username="nurse",
        password="violet-kettle-harbour-42",
        role="clinician",
        care_teams=[team],
    )
    client.force_login(make_user("hema-x", "hematologist", (team,)))
    html = client.get(reverse("accounts:grant-list")).content.decode()
    assert "nurse" in html and IMG not in html and "&lt;img src=x" in html
