"""Clinical access needs a second person: a hematologist of the team approves (issue 9, item 1)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from crsrisk.accounts import services
from crsrisk.accounts.models import ClinicalGrant, SecurityEvent
from crsrisk.accounts.roles import role_of, visible_patients
from patients.models import CareTeam, Patient
from tests.conftest import make_user

PASSWORD = "violet-kettle-harbour-42"


def _fresh(user: User) -> User:
    """A new user object: the role helpers cache their answer per object (per request)."""
    return User.objects.get(pk=user.pk)


def _create(
    admin: User, name: str, role: str, teams: tuple[CareTeam, ...] = (), all_teams: bool = False
) -> User:
    return services.user_create(
        actor=admin, username=name, password=PASSWORD, role=role, care_teams=teams, all_care_teams=all_teams
    )


def test_a_new_clinician_sees_nothing_until_a_hematologist_of_the_team_approves(
    site_admin: User, team: CareTeam, patient: Patient, hematologist: User
) -> None:
    nurse = _create(site_admin, "nurse", "clinician", (team,))
    assert role_of(_fresh(nurse)) is None and not visible_patients(_fresh(nurse)).exists()
    grant = nurse.clinical_grants.get()
    services.grant_approve(actor=hematologist, grant=grant)
    assert role_of(_fresh(nurse)) == "clinician"
    assert list(visible_patients(_fresh(nurse))) == [patient]
    approved = SecurityEvent.objects.get(kind="grant_approved", username="nurse")
    assert approved.actor == hematologist


def test_a_hematologist_of_another_team_cannot_approve(
    site_admin: User, team: CareTeam, other_team: CareTeam
) -> None:
    nurse = _create(site_admin, "nurse", "clinician", (team,))
    outsider = make_user("hema9", "hematologist", (other_team,))
    with pytest.raises(ValidationError, match="Ward 7"):
        services.grant_approve(actor=outsider, grant=nurse.clinical_grants.get())
    assert nurse.clinical_grants.get().status == "pending"


@pytest.mark.parametrize("who", ["site_admin", "clinician", "self"])
def test_nobody_but_a_hematologist_other_than_the_account_approves(
    request: pytest.FixtureRequest, site_admin: User, team: CareTeam, hematologist: User, who: str
) -> None:
    hema = _create(site_admin, "hema2", "hematologist", all_teams=True)
    actor = hema if who == "self" else request.getfixturevalue(who)
    with pytest.raises(ValidationError):
        services.grant_approve(actor=actor, grant=hema.clinical_grants.get())
    assert role_of(_fresh(hema)) is None


def test_the_requester_cannot_approve_even_as_a_hematologist(team: CareTeam, hematologist: User) -> None:
    """Whoever asked for the access is not the second person (an admin service called by a hematologist)."""
    nurse = _create(hematologist, "nurse", "clinician", (team,))
    with pytest.raises(ValidationError, match="second person"):
        services.grant_approve(actor=hematologist, grant=nurse.clinical_grants.get())


def test_an_unapproved_hematologist_cannot_approve_another(site_admin: User, team: CareTeam) -> None:
    first = _create(site_admin, "h1", "hematologist", (team,))
    second = _create(site_admin, "h2", "hematologist", (team,))
    with pytest.raises(ValidationError):
        services.grant_approve(actor=_fresh(first), grant=second.clinical_grants.get())


def test_refused_access_stays_closed(site_admin: User, team: CareTeam, hematologist: User) -> None:
    nurse = _create(site_admin, "nurse", "clinician", (team,))
    services.grant_refuse(actor=hematologist, grant=nurse.clinical_grants.get())
    assert nurse.clinical_grants.get().status == "refused"
    assert role_of(_fresh(nurse)) is None
    assert SecurityEvent.objects.filter(kind="grant_refused", username="nurse", actor=hematologist).exists()


def test_adding_a_team_waits_while_removing_one_applies_at_once(
    site_admin: User, clinician: User, team: CareTeam, other_team: CareTeam, patient: Patient
) -> None:
    services.user_update(actor=site_admin, user=clinician, role="clinician", care_teams=[team, other_team])
    assert set(visible_patients(_fresh(clinician))) == {patient}  # Ward 7 only, as approved
    assert clinician.clinical_grants.get(status="pending")
    services.user_update(actor=site_admin, user=clinician, role="clinician", care_teams=[])
    assert not visible_patients(_fresh(clinician)).exists()
    assert not clinician.clinical_grants.filter(status="pending").exists()  # nothing to approve
    # Giving the team back is a new grant: the old approval was cut down with it.
    services.user_update(actor=site_admin, user=clinician, role="clinician", care_teams=[team])
    assert not visible_patients(_fresh(clinician)).exists()
    assert clinician.clinical_grants.filter(status="pending").count() == 1


def test_a_promotion_to_hematologist_waits_for_approval(
    site_admin: User, clinician: User, hematologist: User, team: CareTeam
) -> None:
    services.user_update(actor=site_admin, user=clinician, role="hematologist", care_teams=[team])
    assert role_of(_fresh(clinician)) == "clinician"  # keeps what was approved
    services.grant_approve(actor=hematologist, grant=clinician.clinical_grants.get(status="pending"))
    assert role_of(_fresh(clinician)) == "hematologist"


def test_all_care_teams_set_by_hand_without_a_grant_saying_so_opens_nothing_more(
    hematologist: User, patient: Patient, other_team: CareTeam
) -> None:
    """The helpers check the grant, not only the profile: a direct write opens nothing."""
    other = Patient.objects.create(mrn="Q900", name="Other", care_team=other_team)
    hematologist.profile.all_care_teams = True
    hematologist.profile.save()
    hematologist.profile.care_teams.add(other_team)
    assert set(visible_patients(_fresh(hematologist))) == {patient}
    assert other not in visible_patients(_fresh(hematologist))


def test_deactivation_withdraws_a_pending_request(site_admin: User, team: CareTeam) -> None:
    nurse = _create(site_admin, "nurse", "clinician", (team,))
    services.user_deactivate(actor=site_admin, user=nurse)
    assert nurse.clinical_grants.get().status == "withdrawn"


def test_approve_grant_command_is_for_the_first_hematologist(site_admin: User, team: CareTeam) -> None:
    first = _create(site_admin, "h1", "hematologist", (team,))
    call_command("approve_grant", "h1")
    assert role_of(_fresh(first)) == "hematologist"
    event = SecurityEvent.objects.get(kind="grant_approved", username="h1")
    assert event.actor is None and "manage.py approve_grant" in event.detail
    with pytest.raises(CommandError):
        call_command("approve_grant", "h1")


# --- the approval page ------------------------------------------------------------------------


def test_the_approval_page_lists_what_the_hematologist_may_decide(
    client: Client, site_admin: User, team: CareTeam, other_team: CareTeam, hematologist: User
) -> None:
    _create(site_admin, "nurse7", "clinician", (team,))
    _create(site_admin, "nurse9", "clinician", (other_team,))
    client.force_login(hematologist)
    html = client.get(reverse("accounts:grant-list")).content.decode()
    assert "nurse7" in html and "nurse9" not in html


def test_approve_through_the_page(
    client: Client, site_admin: User, team: CareTeam, hematologist: User, patient: Patient
) -> None:
    nurse = _create(site_admin, "nurse7", "clinician", (team,))
    client.force_login(hematologist)
    grant = nurse.clinical_grants.get()
    response = client.post(reverse("accounts:grant-approve", args=[grant.pk]), follow=True)
    assert "approved" in response.content.decode()
    assert ClinicalGrant.objects.get(pk=grant.pk).decided_by == hematologist


def test_refuse_through_the_page(
    client: Client, site_admin: User, team: CareTeam, hematologist: User
) -> None:
    nurse = _create(site_admin, "nurse7", "clinician", (team,))
    client.force_login(hematologist)
    grant = nurse.clinical_grants.get()
    client.post(reverse("accounts:grant-refuse", args=[grant.pk]))
    assert ClinicalGrant.objects.get(pk=grant.pk).status == "refused"


def test_the_account_page_shows_who_created_and_who_approved_and_every_login(
    client: Client, site_admin: User, team: CareTeam, hematologist: User
) -> None:
    nurse = _create(site_admin, "nurse7", "clinician", (team,))
    services.grant_approve(actor=hematologist, grant=nurse.clinical_grants.get())
    Client().post(reverse("accounts:login"), {"username": "nurse7", "password": PASSWORD})
    client.force_login(site_admin)
    response = client.get(reverse("accounts:user-edit", args=[nurse.pk]))
    kinds = [(e.kind, e.actor.username if e.actor else None) for e in response.context["history"]]
    assert ("account_created", "admin1") in kinds
    assert ("grant_requested", "admin1") in kinds
    assert ("grant_approved", "hema") in kinds
    assert ("login", "nurse7") in kinds


# --- the forced password change ----------------------------------------------------------------


def test_first_sign_in_and_sign_in_after_a_reset_force_a_new_password(
    site_admin: User, team: CareTeam, hematologist: User
) -> None:
    nurse = _create(site_admin, "nurse7", "clinician", (team,))
    services.grant_approve(actor=hematologist, grant=nurse.clinical_grants.get())
    browser = Client()
    browser.post(reverse("accounts:login"), {"username": "nurse7", "password": PASSWORD})
    assert browser.get("/patients/")["Location"] == reverse("accounts:password-change")
    assert browser.get("/api/v1/patients/").status_code == 403
    page = browser.get(reverse("accounts:password-change")).content.decode()
    assert "Choose your own" in page
    # The same password again is no change.
    same = browser.post(
        reverse("accounts:password-change"),
        {"old_password": PASSWORD, "new_password1": PASSWORD, "new_password2": PASSWORD},
    )
    assert same.status_code == 200 and "different from the current one" in same.content.decode()
    new = "amber-lantern-orchard-77"
    browser.post(
        reverse("accounts:password-change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert browser.get("/patients/").status_code == 200
    services.user_password_reset(actor=site_admin, user=nurse, password=PASSWORD)
    again = Client()
    again.post(reverse("accounts:login"), {"username": "nurse7", "password": PASSWORD})
    assert again.get("/patients/")["Location"] == reverse("accounts:password-change")


# --- tokens ---------------------------------------------------------------------------------------


def test_an_admin_cannot_issue_a_token_through_the_service(site_admin: User, clinician: User) -> None:
    with pytest.raises(ValidationError, match="owner"):
        services.token_issue(actor=site_admin, user=clinician)


def test_token_creation_asks_for_the_password(client: Client, clinician: User) -> None:
    client.force_login(clinician)
    response = client.post(reverse("accounts:token-create"), {"password": "not-my-password-at-all"})
    assert response.status_code == 200 and "not your password" in response.content.decode()
    from rest_framework.authtoken.models import Token

    assert not Token.objects.filter(user=clinician).exists()


def test_the_token_records_when_it_was_last_used(clinician: User, patient: Patient) -> None:
    key = services.token_issue(actor=clinician, user=clinician)
    clinician.profile.refresh_from_db()
    assert clinician.profile.token_last_used_at is None
    assert Client().get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    clinician.profile.refresh_from_db()
    assert clinician.profile.token_last_used_at is not None
    event = SecurityEvent.objects.get(kind="token_issued", username="clin")
    assert event.actor == clinician and "owner" in event.detail


def test_issue_token_command_is_audited_as_such(clinician: User) -> None:
    call_command("issue_token", "clin", stdout=io.StringIO())
    event = SecurityEvent.objects.get(kind="token_issued", username="clin")
    assert event.actor is None and "manage.py issue_token" in event.detail


# --- a password reset by an admin (security review f2) -------------------------------------------


def test_an_admin_reset_withdraws_the_grant_in_force_until_a_hematologist_approves_again(
    site_admin: User, team: CareTeam, other_team: CareTeam, hematologist: User, patient: Patient
) -> None:
    """The admin knows the new password: signing in as the user must not open clinical data."""
    nurse = _create(site_admin, "nurse7", "clinician", (team,))
    services.grant_approve(actor=hematologist, grant=nurse.clinical_grants.get())
    old = nurse.clinical_grants.get()
    services.user_password_reset(actor=site_admin, user=nurse, password="amber-lantern-orchard-77")
    assert role_of(_fresh(nurse)) is None and not visible_patients(_fresh(nurse)).exists()
    assert ClinicalGrant.objects.get(pk=old.pk).status == "withdrawn"
    again = nurse.clinical_grants.get(status="pending")
    assert again.role == "clinician" and list(again.care_teams.all()) == [team]
    assert again.requested_by == site_admin
    assert SecurityEvent.objects.filter(kind="grant_withdrawn", username="nurse7", actor=site_admin).exists()
    # The admin cannot approve it; a hematologist of the team can.
    with pytest.raises(ValidationError):
        services.grant_approve(actor=site_admin, grant=again)
    services.grant_approve(actor=hematologist, grant=again)
    assert list(visible_patients(_fresh(nurse))) == [patient]


def test_an_admin_reset_keeps_a_pending_request_and_asks_nothing_new(
    site_admin: User, clinician: User, team: CareTeam, other_team: CareTeam
) -> None:
    services.user_update(actor=site_admin, user=clinician, role="clinician", care_teams=[team, other_team])
    services.user_password_reset(actor=site_admin, user=clinician, password="amber-lantern-orchard-77")
    assert role_of(_fresh(clinician)) is None
    pending = clinician.clinical_grants.get(status="pending")
    assert set(pending.care_teams.all()) == {team, other_team}


def test_the_reset_page_says_that_clinical_access_waits_for_approval(
    client: Client, site_admin: User, clinician: User
) -> None:
    client.force_login(site_admin)
    new = "amber-lantern-orchard-77"
    response = client.post(
        reverse("accounts:user-password", args=[clinician.pk]),
        {"password": new, "password_confirm": new},
        follow=True,
    )
    html = response.content.decode()
    assert "The clinical access of clin is withdrawn" in html
    assert role_of(_fresh(clinician)) is None


# --- "all care teams" needs an approver who sees all teams (security review f2) -----------------


def test_a_single_team_hematologist_cannot_approve_all_care_teams(
    site_admin: User, team: CareTeam, hematologist: User
) -> None:
    hema = _create(site_admin, "hema2", "hematologist", (team,), all_teams=True)
    with pytest.raises(ValidationError, match="all care teams"):
        services.grant_approve(actor=hematologist, grant=hema.clinical_grants.get())
    assert role_of(_fresh(hema)) is None
    senior = make_user("senior", "hematologist", all_teams=True)
    services.grant_approve(actor=senior, grant=hema.clinical_grants.get())
    assert role_of(_fresh(hema)) == "hematologist"


def test_approve_grant_command_still_approves_all_care_teams(site_admin: User) -> None:
    first = _create(site_admin, "h1", "hematologist", all_teams=True)
    call_command("approve_grant", "h1")
    assert role_of(_fresh(first)) == "hematologist"
