"""Admins create and rename care teams on a page of their own, audited (issue 8 item 8)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crsrisk.accounts import services
from crsrisk.accounts.models import SecurityEvent
from patients import services as patient_services
from patients.models import CareTeam


@pytest.fixture
def admin_client(client: Client, site_admin: User) -> Client:
    client.force_login(site_admin)
    return client


def test_admin_creates_a_care_team_through_the_page(admin_client: Client, site_admin: User) -> None:
    response = admin_client.post(reverse("accounts:care-team-list"), {"name": "  Paediatric CAR-T unit "})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:care-team-list")
    team = CareTeam.objects.get(name="Paediatric CAR-T unit")
    event = SecurityEvent.objects.get(kind="care_team_created")
    assert event.actor == site_admin
    assert "Paediatric CAR-T unit" in event.detail
    page = admin_client.get(reverse("accounts:care-team-list")).content.decode()
    assert "Paediatric CAR-T unit" in page
    assert reverse("accounts:care-team-rename", args=[team.pk]) in page
    # The new team is offered on the new-account page.
    assert "Paediatric CAR-T unit" in admin_client.get(reverse("accounts:user-create")).content.decode()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ward 7", "A care team called &#x27;Ward 7&#x27; already exists."),
        ("   ", "Give the care team a name."),
        ("W" * 101, "A care team name has at most 100 characters; this one has 101."),
    ],
)
def test_a_refused_team_name_says_why_keeps_the_input_and_stores_nothing(
    admin_client: Client, team: CareTeam, name: str, message: str
) -> None:
    response = admin_client.post(reverse("accounts:care-team-list"), {"name": name})
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html or ("Give the care team a name." in message and "This field is required." in html)
    if name.strip():
        assert f'value="{name}"' in html
    assert list(CareTeam.objects.values_list("name", flat=True)) == ["Ward 7"]
    assert not SecurityEvent.objects.filter(kind="care_team_created").exists()


def test_admin_renames_a_team_and_its_members_and_patients_stay(
    admin_client: Client, site_admin: User, team: CareTeam, clinician: User
) -> None:
    patient = patient_services.patient_register(
        user=clinician,
        mrn="CT-1",
        name="Team Patient",
        infusion_date=timezone.localdate() - timedelta(days=2),
        care_team=team,
    )
    url = reverse("accounts:care-team-rename", args=[team.pk])
    assert 'value="Ward 7"' in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"name": "Haematology ward 7"})
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.name == "Haematology ward 7"
    assert list(clinician.profile.care_teams.all()) == [team]
    patient.refresh_from_db()
    assert patient.care_team_id == team.pk
    event = SecurityEvent.objects.get(kind="care_team_renamed")
    assert event.actor == site_admin
    assert "Ward 7" in event.detail and "Haematology ward 7" in event.detail


def test_a_rename_onto_another_team_or_onto_itself_is_refused(site_admin: User, team: CareTeam) -> None:
    other = CareTeam.objects.create(name="Day hospital")
    with pytest.raises(ValidationError) as exc:
        services.care_team_rename(actor=site_admin, team=other, name="WARD 7")
    assert exc.value.message_dict == {"name": ["A care team called 'Ward 7' already exists."]}
    with pytest.raises(ValidationError) as exc:
        services.care_team_rename(actor=site_admin, team=team, name="Ward 7")
    assert exc.value.message_dict == {"name": ["The care team is already called 'Ward 7'."]}
    # A change of case only is a rename.
    services.care_team_rename(actor=site_admin, team=team, name="WARD 7")
    assert CareTeam.objects.get(pk=team.pk).name == "WARD 7"
    assert CareTeam.objects.get(pk=other.pk).name == "Day hospital"
    assert SecurityEvent.objects.filter(kind="care_team_renamed").count() == 1


def test_the_care_team_page_shows_names_only(admin_client: Client, team: CareTeam, clinician: User) -> None:
    patient_services.patient_register(
        user=clinician,
        mrn="SECRET-7",
        name="Hidden Name",
        infusion_date=timezone.localdate() - timedelta(days=2),
        care_team=team,
    )
    html = admin_client.get(reverse("accounts:care-team-list")).content.decode()
    assert "Ward 7" in html
    assert "SECRET-7" not in html and "Hidden Name" not in html


@pytest.mark.parametrize("name", ["accounts:care-team-list", "accounts:care-team-rename"])
def test_only_admins_reach_the_care_team_pages(
    client: Client, clinician: User, hematologist: User, team: CareTeam, name: str
) -> None:
    url = reverse(name, args=[team.pk]) if name.endswith("rename") else reverse(name)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    for user in (clinician, hematologist):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, {"name": "Taken over"}).status_code == 403
    assert not CareTeam.objects.filter(name="Taken over").exists()
