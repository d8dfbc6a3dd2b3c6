"""Production settings redirect to HTTPS, except /health/ for the load balancer (issue 11)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.nodb

PROBE = """
import django
django.setup()
from django.test import Client
client = Client()
print(client.get("/health/").status_code, client.get("/about/").status_code)
"""


def test_health_is_exempt_from_the_https_redirect(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DATABASE_URL"}}
    env |= {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "testserver",
        "TIME_ZONE": "Europe/Berlin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'health.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "crsrisk.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    health, about = result.stdout.split()
    assert about == "301"  # plain HTTP goes to HTTPS
    assert health == "200"  # but the health check answers over plain HTTP
