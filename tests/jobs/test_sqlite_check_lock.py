"""On SQLite a file's check (a dry run) holds no write lock: a bedside entry goes on meanwhile.

SQLite has one writer at a time. An import is all-or-nothing, so it holds the write lock for its
transaction (docs/deploy.md); its check only reads the stored rows and writes temporary tables,
so it begins DEFERRED (``crsrisk.transactions.lock_free_atomic``). These tests run a process of
their own on a SQLite file, whatever the engine of the run, and take the write lock from a
second connection, with no wait, while the check is reading the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.nodb

SCRIPT = r"""
import io, json, sqlite3, sys
from datetime import date

import django
django.setup()

from crsrisk.jobs.models import Job
from crsrisk.jobs.services import ProgressChannel
from crsrisk.transactions import lock_free_atomic
from patients import imports, services
from patients.models import CareTeam, LabResult
from tests.conftest import make_user

DB, DRY_RUN = sys.argv[1], sys.argv[2] == "dry"
team = CareTeam.objects.create(name="Ward 7")
user = make_user("hema", "hematologist", (team,))
services.patient_register(
    user=user, mrn="L001", name="Lock Patient", infusion_date=date(2025, 3, 1), care_team=team
)
rows = "".join(f"L001,2025-03-{d:02d}T06:00,crp,{d + 10},mg/L,\n" for d in range(2, 20))
data = ("mrn,collected_at,analyte,value,unit,note\n" + rows).encode()


class Probing(io.BytesIO):
    # The file is read twice (its MRNs, then its rows); when the second reading starts the
    # import is inside its transaction: a second connection takes the write lock with no wait
    # and commits a write (which also makes the check's snapshot old: a write of the check to a
    # stored table after this would fail).
    reads = 0
    probe = None

    def seek(self, *args):
        Probing.reads += 1
        if Probing.reads == 2:
            other = sqlite3.connect(DB, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("CREATE TABLE probe_write (x integer)")
                other.execute("COMMIT")
                Probing.probe = "written"
            except sqlite3.OperationalError as exc:
                Probing.probe = str(exc)
            finally:
                other.close()
        return super().seek(*args)


report = imports.run_import("labs", Probing(data), filename="labs.csv", user=user, dry_run=DRY_RUN)

# A job's progress inside such a transaction goes through a connection of its own: the job
# page sees it at once, and it does not take the check's connection's write lock.
job = Job.objects.create(kind=Job.Kind.IMPORT_CHECK, started_by=user, params={})
seen = None
with lock_free_atomic():
    LabResult.objects.count()  # the transaction's first read
    other = sqlite3.connect(DB, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE probe_write_2 (x integer)")
    other.execute("COMMIT")
    channel = ProgressChannel(job.pk)
    channel.progress(3, 10)
    seen = other.execute("SELECT progress_done FROM jobs_job WHERE id = ?", (job.pk,)).fetchone()[0]
    other.close()
    channel.close()
print(json.dumps({
    "ok": report.ok, "errors": report.lines(), "created": report.created, "probe": Probing.probe,
    "reads": Probing.reads, "labs": LabResult.objects.count(), "progress_seen": seen,
}))
"""


def _run(tmp_path: Path, mode: str) -> dict:
    db = tmp_path / "lock.sqlite3"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"DATABASE_URL": f"sqlite:///{db}", "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "crsrisk.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(db), mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_check_holds_no_write_lock_and_its_progress_is_seen_at_once(tmp_path: Path) -> None:
    out = _run(tmp_path, "dry")
    assert out["reads"] == 2  # the probe ran when the rows were read
    assert out["probe"] == "written"  # another connection wrote meanwhile, with no wait
    assert out["ok"], out["errors"]  # and the check still reported the file as it is
    assert out["created"] == 18 and out["labs"] == 0  # a dry run: counted, nothing stored
    assert out["progress_seen"] == 3


def test_an_import_itself_still_holds_the_write_lock_for_its_transaction(tmp_path: Path) -> None:
    # All-or-nothing: the import's rows and recompute are one transaction (docs/deploy.md).
    out = _run(tmp_path, "import")
    assert out["probe"] == "database is locked"
    assert out["ok"] and out["created"] == 18 and out["labs"] == 18
