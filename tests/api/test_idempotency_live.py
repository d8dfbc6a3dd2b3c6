"""Retries over real HTTP: a lost response, and two requests racing with one key (SPEC 9)."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.db import OperationalError, connection, transaction

from crsrisk.accounts.tokens import token_create
from patients.models import IdempotencyKey, LabResult, Patient
from tests.api.test_live_http import call
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db(transaction=True)
PANEL = [
    {"analyte": "crp", "value": "25", "unit": "mg/dL", "collected_at": "2025-03-08T08:00:00+00:00"},
    {"analyte": "il6", "value": "300", "unit": "pg/mL", "collected_at": "2025-03-08T08:00:00+00:00"},
]


def raw_request(url: str, token: str, key: str, body: object) -> bytes:
    parts = urlsplit(url)
    data = json.dumps(body).encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + data


def send_and_lose_the_response(url: str, token: str, key: str, body: object) -> None:
    """Send the whole request, then hang up without reading a byte of the answer."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall(raw_request(url, token, key, body))
    sock.close()


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except OperationalError:  # SQLite's shared test cache: the table is locked while the server writes
            pass
        assert time.monotonic() < deadline, "the server did not finish the first request"
        time.sleep(0.05)


def keyed_call(url: str, token: str, key: str, body: object) -> tuple[int, bytes, str | None]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Authorization", f"Token {token}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310  # our own test server
            return response.status, response.read(), response.headers.get("Idempotent-Replayed")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Idempotent-Replayed")


def test_a_retry_after_a_lost_response_gets_the_first_answer_and_stores_once(live_server, clinician, patient):
    token = token_create(clinician)
    labs = f"{live_server.url}/api/v1/patients/P001/labs/"
    send_and_lose_the_response(labs, token, "batch-2025-03-08", PANEL)
    # The server finished the write although nobody read its answer.
    wait_until(lambda: IdempotencyKey.objects.filter(key="batch-2025-03-08").exclude(status_code=0).exists())
    time.sleep(0.2)  # let its transaction end

    status, body, replayed = keyed_call(labs, token, "batch-2025-03-08", PANEL)
    assert (status, replayed) == (201, "true")
    stored = json.loads(body)["stored"]
    assert [lab["value"] for lab in stored] == ["250", "300"]
    assert {lab["id"] for lab in stored} == set(LabResult.objects.values_list("id", flat=True))
    assert LabResult.objects.count() == 2
    assert body.decode() == IdempotencyKey.objects.get().body

    # Without the key, the same panel is an exact repeat: skipped, nothing stored either.
    status, payload = call(labs, token, PANEL)
    assert status == 200 and len(payload["skipped"]) == 2
    # The same key with a changed body is refused.
    status, body, _ = keyed_call(labs, token, "batch-2025-03-08", [{**PANEL[0], "value": "26"}])
    assert status == 409 and "Idempotency-Key" in json.loads(body)["errors"]
    assert LabResult.objects.count() == 2
    assert_stored_equals_scratch(patient)


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


def test_two_concurrent_requests_with_one_key_store_once(live_server, clinician, patient):
    token = token_create(clinician)
    labs = f"{live_server.url}/api/v1/patients/P001/labs/"
    answers: list[tuple[int, bytes, str | None]] = []

    def send() -> None:
        answers.append(keyed_call(labs, token, "race-1", PANEL))

    threads = [threading.Thread(target=send) for _ in range(2)]
    if connection.vendor == "postgresql":
        # Force the race: hold the patient's row, so that the first request, having reserved its
        # key, waits inside its transaction; the second then waits on the key's unique index.
        with transaction.atomic():
            list(Patient.objects.select_for_update().filter(pk=patient.pk))
            for thread in threads:
                thread.start()
                time.sleep(0.3)
            wait_until(lambda: _waiting_on_locks() >= 2)
        for thread in threads:
            thread.join(60)
    else:
        # The in-memory SQLite test database shares one cache between connections, where a
        # lock is an error instead of a wait: the requests go one after the other here. On a
        # SQLite file, BEGIN IMMEDIATE makes the second wait for the first.
        for thread in threads:
            thread.start()
            thread.join(60)
    assert sorted(a[0] for a in answers) == [201, 201]
    assert answers[0][1] == answers[1][1]
    assert sorted(str(a[2]) for a in answers) == ["None", "true"]
    assert LabResult.objects.count() == 2
    assert IdempotencyKey.objects.count() == 1
    assert_stored_equals_scratch(patient)
