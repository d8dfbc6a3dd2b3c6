"""``next`` never leads off the site (SPEC 7)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

EVIL = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example",
    "https:evil.example",
    "\\\\evil.example",
]


@pytest.mark.parametrize("target", EVIL)
def test_login_next_to_another_site_stays_here(client: Client, clinician: User, target: str) -> None:
    response = client.post(
        reverse("accounts:login") + "?next=" + target,
        {"username": "clin", "password": "correct-horse-battery-9", "next": target},
    )
    assert response.status_code == 302
    location = response["Location"]
    assert "evil.example" not in location
    assert location.startswith("/")


def test_login_next_on_site_is_followed(client: Client, clinician: User) -> None:
    response = client.post(
        reverse("accounts:login"),
        {"username": "clin", "password": "correct-horse-battery-9", "next": "/accounts/password/"},
    )
    assert response["Location"] == "/accounts/password/"


@pytest.mark.parametrize("target", EVIL)
def test_login_page_does_not_echo_an_offsite_next(client: Client, db: None, target: str) -> None:
    response = client.get(reverse("accounts:login"), {"next": target})
    assert response.context["next"] == ""  # LoginView drops an unsafe target
    assert 'name="next" value=""' in response.content.decode()


@pytest.mark.parametrize("target", EVIL)
def test_logout_next_to_another_site_stays_here(client: Client, clinician: User, target: str) -> None:
    client.force_login(clinician)
    response = client.post(reverse("accounts:logout") + "?next=" + target)
    assert "evil.example" not in response.get("Location", "")
