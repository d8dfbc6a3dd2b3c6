"""Real HTTP against a running server, with a token, as an external script would call it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from crsrisk.accounts.models import AccessLog
from crsrisk.accounts.tokens import token_create
from patients.models import LabResult
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db(transaction=True)


def call(url: str, token: str, body: object | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Authorization", f"Token {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # our own test server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_token_client_over_real_http(live_server, clinician, patient):
    token = token_create(clinician)
    labs = f"{live_server.url}/api/v1/patients/P001/labs/"
    body = [
        {"analyte": "crp", "value": "25", "unit": "mg/dL", "collected_at": "2025-03-08T08:00:00+00:00"},
        {"analyte": "il6", "value": "300", "unit": "pg/mL", "collected_at": "2025-03-08T08:00:00+00:00"},
    ]
    status, payload = call(labs, token, body)
    assert status == 201, payload
    assert [lab["value"] for lab in payload["stored"]] == ["250", "300"]

    status, payload = call(labs, token, [{**body[0], "value": "26"}, {**body[1], "unit": "mmHg"}])
    assert status == 400
    assert set(payload["errors"]) == {"[0].value", "[1].unit"}
    assert LabResult.objects.count() == 2

    status, payload = call(labs, "wrong-token")
    assert status == 401

    status, payload = call(f"{live_server.url}/api/v1/patients/P001/summary/", token)
    assert status == 200 and payload["mrn"] == "P001"
    assert AccessLog.objects.filter(mrn="P001", page="api:summary", granted=True).count() == 1
    assert_stored_equals_scratch(patient)
