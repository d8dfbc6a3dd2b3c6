"""``manage.py create_account``: the first account of a fresh site, audited (issue 11)."""

from __future__ import annotations

import io
import sys

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from crsrisk.accounts.models import SecurityEvent
from crsrisk.accounts.roles import role_of

pytestmark = pytest.mark.django_db

PASSWORD = "a long ward password 7"


def create(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = PASSWORD + "\n") -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command("create_account", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_first_admin_from_stdin_is_created_and_audited(monkeypatch):
    assert "created admin account 'root-admin'" in create(monkeypatch, "root-admin", "--role", "admin")
    user = User.objects.get(username="root-admin")
    assert role_of(user) == "admin"
    request = RequestFactory().post("/accounts/login/")
    assert authenticate(request, username="root-admin", password=PASSWORD) == user
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.ACCOUNT_CREATED, username="root-admin")
    assert event.actor is None and "role=admin" in event.detail
    assert PASSWORD not in event.detail


def test_clinician_with_teams_creates_the_missing_team(monkeypatch):
    create(monkeypatch, "dr.li", "--role", "clinician", "--team", "CAR-T ward", "--team", "ICU")
    user = User.objects.get(username="dr.li")
    assert sorted(t.name for t in user.profile.care_teams.all()) == ["CAR-T ward", "ICU"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("weak", "--role", "hematologist"), "short\n", "password"),
        (("nopass", "--role", "clinician"), "\n", "No password on stdin"),
        (("adm", "--role", "admin", "--team", "ICU"), PASSWORD + "\n", "care_teams"),
    ],
)
def test_a_refused_account_says_why_and_creates_nothing(monkeypatch, args, stdin, message):
    with pytest.raises(CommandError, match=message):
        create(monkeypatch, *args, stdin=stdin)
    assert not User.objects.filter(username=args[0]).exists()
    assert not SecurityEvent.objects.filter(kind=SecurityEvent.Kind.ACCOUNT_CREATED).exists()


def test_a_taken_username_is_refused(monkeypatch):
    create(monkeypatch, "dr.wu", "--role", "clinician")
    with pytest.raises(CommandError, match="taken"):
        create(monkeypatch, "DR.WU", "--role", "hematologist")
