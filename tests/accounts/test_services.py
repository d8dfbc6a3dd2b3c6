"""Account services: roles, care teams, deactivation, passwords, tokens (SPEC 7)."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token

from crsrisk.accounts import services
from crsrisk.accounts.models import SecurityEvent
from crsrisk.accounts.roles import assigned_role, role_of, visible_patients
from crsrisk.accounts.tokens import token_digest
from patients.models import CareTeam, Patient
from tests.conftest import make_user

GOOD_PASSWORD = "violet-kettle-harbour-42"


def test_user_create_puts_the_account_in_its_role_and_teams(site_admin: User, team: CareTeam) -> None:
    user = services.user_create(
        actor=site_admin, username="nurse1", password=GOOD_PASSWORD, role="clinician", care_teams=[team]
    )
    # The role is set, but gives no clinical access until a hematologist approves it (issue 9).
    assert assigned_role(user) == "clinician"
    assert role_of(User.objects.get(pk=user.pk)) is None
    assert user.clinical_grants.get().status == "pending"
    assert user.profile.must_change_password
    assert list(user.profile.care_teams.all()) == [team]
    assert user.check_password(GOOD_PASSWORD)
    assert not user.is_staff and not user.is_superuser
    event = SecurityEvent.objects.get(kind="account_created")
    assert event.username == "nurse1" and event.actor == site_admin
    assert GOOD_PASSWORD not in event.detail


def test_user_create_logs_to_the_security_logger_without_the_password(
    site_admin: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="crsrisk.security"):
        services.user_create(actor=site_admin, username="nurse2", password=GOOD_PASSWORD, role="clinician")
    assert "account_created user=nurse2 actor=admin1" in caplog.text
    assert GOOD_PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("short-pass1", False),  # 11 characters
        ("twelve-chars", True),  # exactly 12, no composition rule
        ("qwerty123456", False),  # on the common-password list
        ("384920175629", True),  # digits only is allowed: no composition rules
        ("alllowercaseletters", True),
    ],
)
def test_password_policy_is_length_and_blocklist_only(
    site_admin: User, password: str, accepted: bool
) -> None:
    if accepted:
        services.user_create(actor=site_admin, username="u1", password=password, role="clinician")
    else:
        with pytest.raises(ValidationError) as exc:
            services.user_create(actor=site_admin, username="u1", password=password, role="clinician")
        assert "password" in exc.value.message_dict
        assert not User.objects.filter(username="u1").exists()


def test_all_care_teams_only_for_hematologists(site_admin: User) -> None:
    with pytest.raises(ValidationError) as exc:
        services.user_create(
            actor=site_admin, username="c", password=GOOD_PASSWORD, role="clinician", all_care_teams=True
        )
    assert "all_care_teams" in exc.value.message_dict


def test_admins_belong_to_no_care_team(site_admin: User, team: CareTeam) -> None:
    with pytest.raises(ValidationError) as exc:
        services.user_create(
            actor=site_admin, username="a", password=GOOD_PASSWORD, role="admin", care_teams=[team]
        )
    assert "care_teams" in exc.value.message_dict


def test_username_is_unique_case_insensitively(site_admin: User) -> None:
    services.user_create(actor=site_admin, username="Nurse", password=GOOD_PASSWORD, role="clinician")
    with pytest.raises(ValidationError):
        services.user_create(actor=site_admin, username="nurse", password=GOOD_PASSWORD, role="clinician")


def test_all_care_teams_hematologist_sees_every_patient_once_approved(
    site_admin: User, patient: Patient, other_team: CareTeam, hematologist: User
) -> None:
    hema = services.user_create(
        actor=site_admin, username="h2", password=GOOD_PASSWORD, role="hematologist", all_care_teams=True
    )
    assert list(visible_patients(User.objects.get(pk=hema.pk))) == []
    senior = make_user("senior", "hematologist", all_teams=True)  # one who sees all teams approves
    services.grant_approve(actor=senior, grant=hema.clinical_grants.get())
    assert list(visible_patients(User.objects.get(pk=hema.pk))) == [patient]


def test_user_update_changes_role_and_teams(site_admin: User, clinician: User, other_team: CareTeam) -> None:
    services.user_update(actor=site_admin, user=clinician, role="hematologist", care_teams=[other_team])
    fresh = User.objects.get(pk=clinician.pk)
    # Leaving Ward 7 applies at once; the role and Ward 9 wait for a hematologist of Ward 9.
    assert role_of(fresh) == "clinician" and not visible_patients(fresh).exists()
    approver = make_user("hema9", "hematologist", (other_team,))
    services.grant_approve(actor=approver, grant=fresh.clinical_grants.get(status="pending"))
    fresh = User.objects.get(pk=clinician.pk)
    assert role_of(fresh) == "hematologist"
    assert list(fresh.profile.care_teams.all()) == [other_team]
    assert fresh.groups.count() == 1
    assert SecurityEvent.objects.filter(kind="account_changed", username="clin").exists()


def test_admin_cannot_drop_own_admin_role(site_admin: User) -> None:
    with pytest.raises(ValidationError):
        services.user_update(actor=site_admin, user=site_admin, role="clinician")


def test_deactivate_keeps_the_account_and_revokes_its_token(site_admin: User, clinician: User) -> None:
    services.token_issue(actor=None, user=clinician)
    services.user_deactivate(actor=site_admin, user=clinician)
    clinician.refresh_from_db()
    assert clinician.is_active is False
    assert not Token.objects.filter(user=clinician).exists()
    assert SecurityEvent.objects.filter(kind="account_deactivated", username="clin").exists()


def test_deactivated_account_cannot_sign_in(client, site_admin: User, clinician: User) -> None:
    services.user_deactivate(actor=site_admin, user=clinician)
    response = client.post(
        reverse("accounts:login"), {"username": "clin", "password": "correct-horse-battery-9"}
    )
    assert response.status_code == 200  # the form again, with its error
    assert "_auth_user_id" not in client.session


def test_admin_cannot_deactivate_self(site_admin: User) -> None:
    with pytest.raises(ValidationError):
        services.user_deactivate(actor=site_admin, user=site_admin)


def test_reactivate(site_admin: User, clinician: User) -> None:
    services.user_deactivate(actor=site_admin, user=clinician)
    services.user_reactivate(actor=site_admin, user=clinician)
    clinician.refresh_from_db()
    assert clinician.is_active


def test_password_reset_validates_and_records_no_secret(site_admin: User, clinician: User) -> None:
    with pytest.raises(ValidationError):
        services.user_password_reset(actor=site_admin, user=clinician, password="short")
    services.user_password_reset(actor=site_admin, user=clinician, password=GOOD_PASSWORD)
    clinician.refresh_from_db()
    assert clinician.check_password(GOOD_PASSWORD)
    event = SecurityEvent.objects.get(kind="password_reset")
    assert event.username == "clin" and GOOD_PASSWORD not in event.detail


def test_token_issue_replaces_the_old_token_and_never_records_it(site_admin: User, clinician: User) -> None:
    first = services.token_issue(actor=clinician, user=clinician)
    second = services.token_issue(actor=clinician, user=clinician)
    assert first != second
    assert Token.objects.get(user=clinician).key == token_digest(second)
    for event in SecurityEvent.objects.filter(kind="token_issued"):
        assert first not in event.detail and second not in event.detail


def test_token_revoke(site_admin: User, clinician: User) -> None:
    services.token_issue(actor=None, user=clinician)
    services.token_revoke(actor=site_admin, user=clinician)
    assert not Token.objects.filter(user=clinician).exists()
    assert SecurityEvent.objects.filter(kind="token_revoked", username="clin").exists()
    with pytest.raises(ValidationError):
        services.token_revoke(actor=site_admin, user=clinician)


def test_issue_token_command_prints_the_token(clinician: User, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("issue_token", "clin")
    out = capsys.readouterr().out.strip()
    assert Token.objects.get(user=clinician).key == token_digest(out)
    assert SecurityEvent.objects.filter(kind="token_issued", username="clin", actor=None).exists()


def test_issue_token_command_refuses_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="No account named 'ghost'"):
        call_command("issue_token", "ghost")
