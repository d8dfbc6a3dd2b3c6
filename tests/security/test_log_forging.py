"""Log lines cannot be forged: the security log writes one JSON object per line (issue 9).

CR/LF in a username or a URL used to start a new, forged line in the crsrisk.security log
(CWE-117). The configured handler's formatter escapes every control character.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from django.urls import reverse

FORGED = "clin\r\n2026-01-01T00:00:00.000Z INFO crsrisk.security login user=admin1 ip=10.0.0.1"


@pytest.fixture
def security_log_output() -> Iterator[io.StringIO]:
    """The text the configured crsrisk.security handler writes, in place of the console."""
    handlers = logging.getLogger("crsrisk.security").handlers
    assert handlers, "the crsrisk.security logger has a handler in settings.LOGGING"
    out = io.StringIO()
    previous = [h.setStream(out) for h in handlers if isinstance(h, logging.StreamHandler)]
    yield out
    for handler, stream in zip(handlers, previous, strict=False):
        handler.setStream(stream)


def entries(out: io.StringIO) -> list[dict]:
    lines = out.getvalue().splitlines()
    return [json.loads(line) for line in lines]  # every line is one whole JSON object


@pytest.mark.django_db
def test_a_username_with_cr_lf_stays_inside_one_log_line(client, security_log_output) -> None:
    client.post(reverse("accounts:login"), {"username": FORGED, "password": "wrong-password-12345"})
    logged = entries(security_log_output)
    assert len(logged) == 1
    entry = logged[0]
    assert entry["level"] == "INFO" and entry["logger"] == "crsrisk.security"
    assert entry["time"].endswith("Z")
    assert FORGED in entry["message"]  # kept whole, escaped in the file
    assert "\n2026-01-01" not in security_log_output.getvalue()


@pytest.mark.django_db
def test_an_mrn_with_cr_lf_in_the_url_stays_inside_one_log_line(client, clinician, security_log_output):
    client.force_login(clinician)
    security_log_output.truncate(0)
    security_log_output.seek(0)
    response = client.get("/patients/P1%0D%0A2026-01-01 INFO forged%E2%80%AE/")
    assert response.status_code == 404
    logged = entries(security_log_output)
    denied = [e for e in logged if e.get("event") == "patient_access_denied"]
    assert len(denied) == 1
    assert denied[0]["mrn"] == "P1\r\n2026-01-01 INFO forged\u202e"
    assert denied[0]["user"] == "clin"
    # Text-direction characters are escaped too: the raw line is ASCII.
    assert security_log_output.getvalue().isascii()
