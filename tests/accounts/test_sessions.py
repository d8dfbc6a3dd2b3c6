"""Sessions: key rotation at login, idle and absolute timeouts, logout, password change (SPEC 7)."""

from __future__ import annotations

import time
from datetime import timedelta
from unittest import mock

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crsrisk.accounts import services
from crsrisk.accounts.middleware import SESSION_STARTED_KEY
from crsrisk.accounts.models import SecurityEvent

PASSWORD = "correct-horse-battery-9"
PAGE = "accounts:password-change"  # any page that needs a login


def sign_in(client: Client, username: str = "clin") -> None:
    response = client.post(reverse("accounts:login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content


def is_signed_in(client: Client) -> bool:
    response = client.get(reverse(PAGE))
    if response.status_code == 302:
        assert response["Location"].startswith(reverse("accounts:login"))
        return False
    assert response.status_code == 200
    return True


def later(seconds: float) -> mock._patch:  # type: ignore[type-arg]
    """Move the session store's clock ``seconds`` ahead."""
    moved = timezone.now() + timedelta(seconds=seconds)
    return mock.patch("django.contrib.sessions.backends.db.timezone.now", return_value=moved)


def test_settings_idle_30_minutes_sliding_absolute_12_hours() -> None:
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_ABSOLUTE_SECONDS == 12 * 60 * 60


def test_session_key_rotates_at_login(client: Client, clinician: User) -> None:
    client.get(reverse("accounts:login"))
    client.session.save()  # an anonymous session exists before login
    before = client.session.session_key
    sign_in(client)
    after = client.session.session_key
    assert before and after and before != after
    assert not SessionStore().exists(before)


def test_login_is_recorded_with_time_user_and_ip(client: Client, clinician: User) -> None:
    sign_in(client)
    event = SecurityEvent.objects.get(kind="login")
    assert event.username == "clin" and event.ip_address == "127.0.0.1"
    assert event.at.utcoffset() == timedelta(0)  # stored and shown in UTC


def test_idle_session_ends_after_30_minutes(client: Client, clinician: User) -> None:
    sign_in(client)
    with later(31 * 60):
        assert not is_signed_in(client)


def test_activity_keeps_the_session_alive(client: Client, clinician: User) -> None:
    sign_in(client)
    with later(25 * 60):
        assert is_signed_in(client)  # saves the session: expiry moves to +55 min
    session = SessionStore(session_key=client.session.session_key)
    with later(50 * 60):
        assert session.exists(session.session_key)
        assert is_signed_in(client)


def test_absolute_lifetime_ends_an_active_session_after_12_hours(client: Client, clinician: User) -> None:
    sign_in(client)
    session = client.session
    session[SESSION_STARTED_KEY] = time.time() - (12 * 60 * 60 - 60)
    session.save()
    assert is_signed_in(client)  # 11 h 59 min
    session = client.session
    session[SESSION_STARTED_KEY] = time.time() - (12 * 60 * 60 + 1)
    session.save()
    assert not is_signed_in(client)


def test_logout_invalidates_the_session(client: Client, clinician: User) -> None:
    sign_in(client)
    key = client.session.session_key
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert not SessionStore().exists(key)
    # Replaying the old cookie does not sign anyone in.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = key
    assert not is_signed_in(replay)
    assert SecurityEvent.objects.filter(kind="logout", username="clin").exists()


def test_logout_needs_post(client: Client, clinician: User) -> None:
    sign_in(client)
    assert client.get(reverse("accounts:logout")).status_code == 405
    assert is_signed_in(client)


def test_password_change_ends_the_other_sessions(clinician: User) -> None:
    here, elsewhere = Client(), Client()
    sign_in(here)
    sign_in(elsewhere)
    new = "amber-lantern-quietly-77"
    response = here.post(
        reverse("accounts:password-change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    assert is_signed_in(here)
    assert not is_signed_in(elsewhere)


def test_admin_password_reset_ends_the_users_sessions(clinician: User, site_admin: User) -> None:
    client = Client()
    sign_in(client)
    services.user_password_reset(actor=site_admin, user=clinician, password="amber-lantern-quietly-77")
    assert not is_signed_in(client)


def test_deactivation_ends_the_users_sessions(clinician: User, site_admin: User) -> None:
    client = Client()
    sign_in(client)
    services.user_deactivate(actor=site_admin, user=clinician)
    assert not is_signed_in(client)


def test_absolute_lifetime_starts_at_login(client: Client, clinician: User) -> None:
    sign_in(client)
    assert abs(client.session[SESSION_STARTED_KEY] - time.time()) < 60
