"""Lockout after 5 failed logins in 15 minutes, until an admin unlocks (SPEC 7, django-axes)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from axes.models import AccessFailureLog
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client
from django.urls import reverse

from crsrisk.accounts import services
from crsrisk.accounts.lockout import is_locked
from crsrisk.accounts.models import SecurityEvent

RIGHT = "correct-horse-battery-9"
WRONG = "wrong-password-000"


def attempt(client: Client, password: str, username: str = "clin") -> int:
    return client.post(
        reverse("accounts:login"), {"username": username, "password": password}, REMOTE_ADDR="10.1.2.3"
    ).status_code


def age_failures(minutes: int) -> None:
    """Pretend the recorded failures happened ``minutes`` earlier."""
    AccessFailureLog.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))


def test_five_failures_lock_the_account(client: Client, clinician: User) -> None:
    for _ in range(4):
        assert attempt(client, WRONG) == 200
    assert not is_locked("clin")
    assert attempt(client, WRONG) == 429
    assert is_locked("clin")
    # Even the right password is refused now, and the page says why.
    response = client.post(reverse("accounts:login"), {"username": "clin", "password": RIGHT})
    assert response.status_code == 429
    assert "Account locked" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert SecurityEvent.objects.filter(kind="lockout", username="clin").exists()


def test_the_lock_does_not_expire_by_itself(client: Client, clinician: User) -> None:
    for _ in range(5):
        attempt(client, WRONG)
    age_failures(24 * 60)
    assert attempt(client, RIGHT) == 429


def test_failures_older_than_15_minutes_do_not_count(client: Client, clinician: User) -> None:
    for _ in range(4):
        attempt(client, WRONG)
    age_failures(16)
    for _ in range(4):
        assert attempt(client, WRONG) == 200
    assert not is_locked("clin")
    assert attempt(client, RIGHT) == 302


def test_failures_within_15_minutes_count_across_the_window(client: Client, clinician: User) -> None:
    for _ in range(3):
        attempt(client, WRONG)
    age_failures(14)
    attempt(client, WRONG)
    assert not is_locked("clin")
    assert attempt(client, WRONG) == 429  # 5 failures within 14 minutes


def test_failures_of_other_accounts_do_not_count(client: Client, clinician: User, hematologist: User) -> None:
    for _ in range(4):
        attempt(client, WRONG, username="hema")
    for _ in range(4):
        attempt(client, WRONG, username="clin")
    assert not is_locked("clin") and not is_locked("hema")


def test_success_resets_the_count(client: Client, clinician: User) -> None:
    for _ in range(4):
        attempt(client, WRONG)
    assert attempt(client, RIGHT) == 302
    client.post(reverse("accounts:logout"))
    for _ in range(4):
        assert attempt(client, WRONG) == 200
    assert not is_locked("clin")


def test_admin_unlock_lets_the_user_in_and_starts_a_fresh_count(
    client: Client, clinician: User, site_admin: User
) -> None:
    for _ in range(5):
        attempt(client, WRONG)
    admin = Client()
    admin.force_login(site_admin)
    admin.post(reverse("accounts:user-unlock", args=[clinician.pk]))
    assert not is_locked("clin")
    assert attempt(client, WRONG) == 200  # one typo after an unlock does not lock again
    assert attempt(client, RIGHT) == 302
    assert SecurityEvent.objects.filter(kind="unlock", username="clin", actor=site_admin).exists()


def test_user_list_shows_the_lock(client: Client, clinician: User, site_admin: User) -> None:
    for _ in range(5):
        attempt(client, WRONG)
    admin = Client()
    admin.force_login(site_admin)
    assert "locked" in admin.get(reverse("accounts:user-list")).content.decode()
    services.user_unlock(actor=site_admin, username="clin")
    assert not is_locked("clin")


def test_failed_logins_are_recorded_with_user_and_ip_never_the_password(
    client: Client, clinician: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="crsrisk.security"):
        attempt(client, WRONG)
    event = SecurityEvent.objects.get(kind="login_failed")
    assert event.username == "clin" and event.ip_address == "10.1.2.3"
    assert "login_failed user=clin" in caplog.text and "ip=10.1.2.3" in caplog.text
    assert WRONG not in caplog.text
    for row in SecurityEvent.objects.all():
        assert WRONG not in row.detail
    for row in AccessFailureLog.objects.all():
        assert WRONG not in str(row.__dict__)
