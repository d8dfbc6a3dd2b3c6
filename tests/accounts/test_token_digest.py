"""API tokens are stored as digests: a copy of the database does not open the API (issue 9 hardening)."""

from __future__ import annotations

import hashlib
import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crsrisk.accounts import services

hash_existing = importlib.import_module("crsrisk.accounts.migrations.0007_api_tokens_stored_as_digests")


def _get(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return int(client.get("/api/v1/patients/").status_code)


def test_the_database_holds_a_digest_of_the_token_never_the_token(clinician: User) -> None:
    raw = services.token_issue(actor=None, user=clinician)
    stored = Token.objects.get(user=clinician).key
    assert raw not in stored
    assert stored == hashlib.sha256(raw.encode()).hexdigest()[:40]


def test_the_token_opens_the_api_and_its_stored_digest_does_not(clinician: User) -> None:
    raw = services.token_issue(actor=None, user=clinician)
    assert _get(raw) == 200
    assert _get(Token.objects.get(user=clinician).key) == 401
    assert _get(raw[:-1] + ("0" if raw[-1] != "0" else "1")) == 401


def test_tokens_issued_before_the_change_still_work_and_are_no_longer_stored(clinician: User) -> None:
    raw = "0123456789abcdef0123456789abcdef01234567"
    Token.objects.create(user=clinician, key=raw)  # as DRF stored it, in clear
    hash_existing.hash_keys(apps, None)
    assert not Token.objects.filter(key=raw).exists()
    assert _get(raw) == 200


@pytest.mark.parametrize("header", ["Token ", "Token a b", "Token " + "x" * 400])
def test_a_malformed_token_header_is_refused_with_401(clinician: User, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/patients/").status_code == 401


def test_drfs_own_token_command_makes_a_key_that_opens_nothing(clinician: User) -> None:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("drf_create_token", clinician.username, stdout=out)
    key = out.getvalue().split()[2]
    assert Token.objects.get(user=clinician).key == key  # DRF stores it in clear ...
    assert _get(key) == 401  # ... and it opens nothing: authentication looks up a digest
