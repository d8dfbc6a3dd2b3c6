"""Production settings pass Django's deployment check; missing secrets fail loudly (SPEC 7, 8.5)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(64),
    "ALLOWED_HOSTS": "crs.hospital.example",
    "TIME_ZONE": "Europe/Berlin",
}

pytestmark = pytest.mark.nodb


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "TIME_ZONE", "ALLOWED_HOSTS"}
    }
    clean.pop("DATABASE_URL", None)
    clean["DATABASE_URL"] = "sqlite:////tmp/crsrisk-deploy-check.sqlite3"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_production_settings() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "TIME_ZONE", "ALLOWED_HOSTS"])
def test_production_without_a_required_setting_fails_loudly(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_production_settings_are_secure() -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SESSION_COOKIE_HTTPONLY, s.SECURE_REFERRER_POLICY, s.X_FRAME_OPTIONS, s.DEBUG)"
    )
    result = manage("shell", "--no-imports", "-c", code, env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "True",
        "31536000",
        "True",
        "True",
        "True",
        "same-origin",
        "DENY",
        "False",
    ]


def test_an_unknown_time_zone_fails_loudly() -> None:
    result = manage("check", env={**PRODUCTION, "TIME_ZONE": "Mars/Olympus"})
    assert result.returncode != 0 and "not a known IANA time zone" in result.stderr
