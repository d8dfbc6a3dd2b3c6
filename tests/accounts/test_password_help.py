"""The new-account help states the password rules the validators really apply (issue 8 item 8)."""

from __future__ import annotations

import pytest
from django.contrib.auth import password_validation
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse

from crsrisk.accounts.forms import password_rules

SIMILAR_TO_USERNAME = "Not too similar to the username, or to a part of it."


@pytest.fixture
def admin_client(client: Client, site_admin: User) -> Client:
    client.force_login(site_admin)
    return client


def test_every_configured_validator_has_its_rule_in_the_help(settings) -> None:
    names = [v["NAME"].rsplit(".", 1)[1] for v in settings.AUTH_PASSWORD_VALIDATORS]
    assert "UserAttributeSimilarityValidator" in names
    rules = password_rules()
    assert len(rules) == len(password_validation.get_default_password_validators())
    assert SIMILAR_TO_USERNAME in rules
    assert "At least 12 characters." in rules
    assert "Not a commonly used password." in rules


@pytest.mark.parametrize("page", ["accounts:user-create", "accounts:user-password"])
def test_the_password_pages_state_every_rule_and_no_other(
    admin_client: Client, site_admin: User, page
) -> None:
    url = reverse(page) if page == "accounts:user-create" else reverse(page, args=[site_admin.pk])
    html = admin_client.get(url).content.decode()
    assert SIMILAR_TO_USERNAME in html
    assert "At least 12 characters." in html
    assert "Not a commonly used password." in html
    assert "No other rules" not in html


@override_settings(
    AUTH_PASSWORD_VALIDATORS=[
        {
            "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
            "OPTIONS": {"min_length": 16},
        },
        {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    ]
)
def test_the_help_follows_the_validators_as_configured(admin_client: Client) -> None:
    html = admin_client.get(reverse("accounts:user-create")).content.decode()
    assert "At least 16 characters." in html
    assert "Not entirely digits." in html
    assert SIMILAR_TO_USERNAME not in html
    assert "12 characters" not in html


def test_a_password_like_the_username_is_refused_as_the_help_says(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("accounts:user-create"),
        {
            "username": "harbourmaster",
            "role": "clinician",
            "password": "harbourmaster1",
            "password_confirm": "harbourmaster1",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "The password is too similar to the username." in html
    assert 'value="harbourmaster"' in html  # the username is kept
    assert not User.objects.filter(username="harbourmaster").exists()


def test_the_rules_are_in_chinese_for_a_chinese_reader(admin_client: Client) -> None:
    html = admin_client.get(reverse("accounts:user-create"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert SIMILAR_TO_USERNAME not in html
    assert "至少 12 个字符。" in html
