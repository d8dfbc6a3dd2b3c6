"""The load-and-fault test (issue 11): gunicorn with 4 workers on PostgreSQL, 32 API clients
posting lab panels and observations for 20 patients, every acknowledged write in a ledger.

The ledger is reconciled against the database: nothing lost, nothing duplicated, and the
stored results equal a from-scratch recompute. The second run restarts PostgreSQL mid-run:
the requests it breaks answer 503 with Retry-After (never a 500), the application serves
again within 5 s of the database's return, and no half-written panel is left.

CI runs the short form (LOAD_SECONDS, default 8 s a run). Collected on PostgreSQL only
(tests/load/conftest.py).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import close_old_connections, connections

from crsrisk.accounts.tokens import token_create
from patients import services
from patients.models import CareTeam, LabResult, Observation, Patient
from tests.conftest import make_user
from tests.invariants import assert_stored_equals_scratch
from tests.load.conftest import (
    BIN,
    free_port,
    postgresql,
    postgresql_running,
    process_env,
    start,
    stop,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 32
PATIENTS = 20
WORKERS = 4
SECONDS = float(os.environ.get("LOAD_SECONDS", "8"))
RECOVERY_SECONDS = 5
INFUSION = date(2024, 12, 1)  # day 730 is in the past, so every day the clients use is allowed


@dataclass
class Ledger:
    """What the server acknowledged (2xx), what it refused, and how long each request took."""

    labs: list[tuple[str, str, str, str]] = field(default_factory=list)  # mrn, analyte, time, value
    observations: list[tuple[str, str, str]] = field(default_factory=list)  # mrn, date, tmax
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    unavailable: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered) of 503s
    successes: list[float] = field(default_factory=list)  # answer times of 2xx
    retry_after_missing: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _post(conn: http.client.HTTPConnection, token: str, path: str, body: Any) -> tuple[int, dict[str, str]]:
    conn.request(
        "POST",
        path,
        body=json.dumps(body),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def _client(c: int, port: int, token: str, mrns: list[str], deadline: float, ledger: Ledger) -> None:
    rng = random.Random(c)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    obs_count: Counter[int] = Counter()
    n = 0
    while time.monotonic() < deadline:
        p = (c + n) % PATIENTS
        mrn = mrns[p]
        if n % 4 == 3 and obs_count[p] < 20:
            day = 1 + c + 32 * obs_count[p]  # (client, patient, k) → a day no other client uses
            obs_count[p] += 1
            when = (INFUSION + timedelta(days=day)).isoformat()
            tmax = f"{rng.uniform(36.5, 39.5):.1f}"
            path, body = f"/api/v1/patients/{mrn}/observations/", {"date": when, "tmax_c": tmax}
            record = ("obs", (mrn, when, tmax))
        else:
            at = datetime(2024, 12, 2, 0, 0, tzinfo=UTC) + timedelta(
                days=c * 20 + n // 200, minutes=5 * (n % 200)
            )
            crp, ferritin = f"{rng.uniform(1, 300):.1f}", f"{rng.uniform(100, 5000):.0f}"
            when = {"collected_at": at.isoformat(), "confirm": True}
            body = [
                {"analyte": "crp", "value": crp, "unit": "mg/L", **when},
                {"analyte": "ferritin", "value": ferritin, "unit": "µg/L", **when},
            ]
            path = f"/api/v1/patients/{mrn}/labs/"
            record = (
                "labs",
                [(mrn, "crp", at.isoformat(), crp), (mrn, "ferritin", at.isoformat(), ferritin)],
            )
        n += 1
        sent = time.monotonic()
        try:
            status, headers = _post(conn, token, path, body)
        except (OSError, http.client.HTTPException):
            status, headers = 0, {}  # the connection broke: not acknowledged
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            time.sleep(0.05)
        answered = time.monotonic()
        with ledger.lock:
            ledger.statuses[status] += 1
            ledger.latencies.append(answered - sent)
            if 200 <= status < 300:
                ledger.successes.append(answered)
                if record[0] == "obs":
                    ledger.observations.append(record[1])  # type: ignore[arg-type]
                else:
                    ledger.labs.extend(record[1])  # type: ignore[arg-type]
            elif status == 503:
                ledger.unavailable.append((sent, answered))
                if "retry-after" not in headers:
                    ledger.retry_after_missing += 1
        if status == 503:
            time.sleep(0.2)
    conn.close()


def _run(port: int, tokens: list[str], mrns: list[str], seconds: float, fault=None) -> Ledger:  # noqa: ANN001
    ledger = Ledger()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_client, args=(c, port, tokens[c % len(tokens)], mrns, deadline, ledger))
        for c in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    fault_result = fault() if fault else None
    for t in threads:
        t.join(timeout=seconds + 120)
    ledger.fault = fault_result  # type: ignore[attr-defined]
    return ledger


def _reconcile(ledger: Ledger, mrns: list[str]) -> None:
    """0 lost, 0 duplicated, every stored row acknowledged or at least sent; stored = scratch."""
    for conn in connections.all():
        conn.close()
    close_old_connections()
    labs = Counter(
        (mrn, analyte, at.astimezone(UTC).isoformat(), entered)
        for mrn, analyte, at, entered in LabResult.objects.filter(
            patient__mrn__in=mrns, voided_at__isnull=True
        ).values_list("patient__mrn", "analyte", "collected_at", "entered_value")
    )
    acknowledged = Counter(ledger.labs)
    assert not [k for k in acknowledged if labs[k] == 0], "acknowledged labs lost"
    assert not [k for k, v in labs.items() if v > 1], "labs stored twice"
    assert not [k for k, v in acknowledged.items() if v > 1], "a lab acknowledged twice"
    observations = Counter(
        (mrn, d.isoformat(), str(t))
        for mrn, d, t in Observation.objects.filter(
            patient__mrn__in=mrns, voided_at__isnull=True
        ).values_list("patient__mrn", "date", "tmax_c")
    )
    assert not [k for k in ledger.observations if observations[k] == 0], "acknowledged observations lost"
    assert not [k for k, v in observations.items() if v > 1], "observations stored twice"
    # A panel is all or nothing: both analytes of a collection time, or neither.
    times = Counter((mrn, at) for mrn, _analyte, at, _v in labs)
    assert all(v == 2 for v in times.values()), "a half-written panel"
    for patient in Patient.objects.filter(mrn__in=mrns):
        assert_stored_equals_scratch(patient)


def _report(name: str, ledger: Ledger, seconds: float) -> str:
    ok = sum(v for k, v in ledger.statuses.items() if 200 <= k < 300)
    p95 = statistics.quantiles(ledger.latencies, n=20)[-1] if len(ledger.latencies) > 20 else 0.0
    return (
        f"{name}: {ok} acknowledged writes in {seconds:.0f} s ({ok / seconds:.1f}/s), "
        f"p95 latency {p95 * 1000:.0f} ms, statuses {dict(sorted(ledger.statuses.items()))}"
    )


@pytest.fixture
def site(tmp_path: Path):
    team = CareTeam.objects.create(name="Load ward")
    users = [make_user(f"load{i}", "clinician", (team,)) for i in range(4)]
    tokens = [token_create(u) for u in users]
    mrns = []
    for i in range(PATIENTS):
        patient = services.patient_register(
            user=users[0], mrn=f"L{i:03d}", name=f"Load {i}", infusion_date=INFUSION, care_team=team
        )
        mrns.append(patient.mrn)
    port = free_port()
    env = process_env(WEB_CONCURRENCY=str(WORKERS), GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_ACCESS_LOG="")
    server = start(
        [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "crsrisk.wsgi"],
        env,
        tmp_path / "gunicorn.log",
    )

    def healthy() -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health/")
            return conn.getresponse().status in (200, 503)
        except OSError:
            return False

    assert wait_until(healthy, timeout=60, interval=0.2), (tmp_path / "gunicorn.log").read_text()[-2000:]
    yield port, tokens, mrns, tmp_path / "gunicorn.log"
    stop(server)


def test_load_every_acknowledged_write_is_stored_once(site, capsys):
    port, tokens, mrns, log = site
    ledger = _run(port, tokens, mrns, SECONDS)
    with capsys.disabled():
        print("\n" + _report("load", ledger, SECONDS))
    assert ledger.statuses[500] == 0 and ledger.statuses[0] == 0, dict(ledger.statuses)
    assert ledger.labs, "nothing was acknowledged"
    _reconcile(ledger, mrns)


def _health(port: int) -> str:
    """The database status /health/ reports through gunicorn, or "" when it does not answer."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health/")
        return str(json.loads(conn.getresponse().read())["database"])
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return ""


def test_load_with_postgresql_restarted_mid_run(site, capsys):
    port, tokens, mrns, log = site

    def restart() -> float:
        """Restart PostgreSQL; return how long the application took to serve again after it."""
        time.sleep(SECONDS / 3)
        try:
            postgresql("restart")
        finally:
            # Never leave the database down for the rest of CI.
            if not wait_until(postgresql_running, timeout=30, interval=0.5):
                postgresql("start")
                wait_until(postgresql_running, timeout=60, interval=0.5)
        back = time.monotonic()
        wait_until(lambda: _health(port) == "ok", timeout=60, interval=0.1)
        return time.monotonic() - back

    try:
        ledger = _run(port, tokens, mrns, max(SECONDS, 10), fault=restart)
    finally:
        if not postgresql_running():
            postgresql("start")
            wait_until(postgresql_running, timeout=60, interval=0.5)
    recovered = ledger.fault  # type: ignore[attr-defined]
    with capsys.disabled():
        print("\n" + _report("load with a PostgreSQL restart", ledger, max(SECONDS, 10)))
        print(
            f"served again {recovered:.1f} s after PostgreSQL accepted connections; "
            f"503 answers: {ledger.statuses[503]}"
        )
    assert ledger.statuses[500] == 0, log.read_text()[-3000:]
    assert ledger.retry_after_missing == 0
    assert recovered <= RECOVERY_SECONDS, f"the application served again only {recovered:.1f} s later"
    assert ledger.labs, "nothing was acknowledged"
    _reconcile(ledger, mrns)
