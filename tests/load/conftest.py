"""Real processes (gunicorn, qcluster) against the test database: PostgreSQL only.

A subprocess cannot see SQLite's in-memory test database, so on SQLite these tests are not
collected at all (rather than skipped).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
    collect_ignore_glob = ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def database_url() -> str:
    """The URL of the test database pytest-django created (the subprocesses' database)."""
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    """Production-like settings on the test database, served over plain HTTP locally."""
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG"}}
    env |= {
        "DEBUG": "0",
        # Queued tasks are signed with SECRET_KEY: every process of a site shares it.
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "TIME_ZONE": "UTC",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "crsrisk.settings",
    }
    return env | extra


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    """Stop a process group started by these tests (SIGKILL when ``kill``)."""
    if process.poll() is None:
        os.killpg(process.pid, 9 if kill else 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


@pytest.fixture
def qcluster_factory(tmp_path: Path) -> Iterator:
    """Start ``manage.py qcluster`` on the test database; every cluster is stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def make(**env: str) -> subprocess.Popen[bytes]:
        p = start([sys.executable, "manage.py", "qcluster"], process_env(**env), tmp_path / "qcluster.log")
        started.append(p)
        return p

    yield make
    for p in started:
        stop(p)


def postgresql(action: str) -> None:
    """``pg_ctlcluster`` on the local cluster (``restart``, ``start``): it waits until done."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        timeout=120,
        capture_output=True,
    )


def postgresql_running() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False).returncode == 0


def postgresql_restart() -> float:
    """Restart PostgreSQL; return the moment (``time.monotonic``) it accepted connections again.

    Whatever happens, PostgreSQL is started again before this returns, so a failure never
    leaves the database down for the other tests (or other engineers' runs).
    """
    try:
        postgresql("restart")
    finally:
        if not wait_until(postgresql_running, timeout=30, interval=0.02):
            postgresql("start")
            wait_until(postgresql_running, timeout=60, interval=0.5)
    return time.monotonic()


def postgresql_outage(seconds: float) -> float:
    """Stop PostgreSQL for ``seconds``, then start it; return the moment it accepted
    connections again. A restart can be shorter than a worker's poll interval, so a worker
    might never notice it: an outage of several polls makes sure that every one does."""
    try:
        postgresql("stop")
        time.sleep(seconds)
    finally:
        postgresql("start")
        wait_until(postgresql_running, timeout=60, interval=0.02)
    return time.monotonic()


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
