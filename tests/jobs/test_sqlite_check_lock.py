"""On SQLite a large import never holds the write lock for long: bedside entries go on meanwhile.

SQLite has one writer at a time. labs.csv and observations.csv are read and checked in a
transaction that begins DEFERRED and writes only temporary tables
(``crsrisk.transactions.lock_free_atomic``); the rows are then written under the lock, after
the checks against the stored rows are run again, in one short transaction; and the patients
are recomputed a chunk per commit after it (``scoring.services.recompute_pending``). A dry run
(the preview) stops after the first step.

These tests run processes of their own on a SQLite file, whatever the engine of the run: a
bedside entry is made by another process, through the ward's own service, while the file is
being read; another connection takes the write lock, with no wait, between recompute chunks;
and an import killed between its write and its recompute is finished by the next
``recompute_pending``.
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

SETUP = r"""
import io, json, os, sqlite3, subprocess, sys, time
from datetime import date

import django
django.setup()

from django.contrib.auth.models import User
from crsrisk.jobs.models import Job
from crsrisk.jobs.services import ProgressChannel
from crsrisk.transactions import lock_free_atomic
from patients import imports, services
from patients.models import CareTeam, LabResult, Patient
from scoring import services as scoring
from scoring.models import PatientSummary, PendingRecompute
from tests.conftest import make_user

DB, MODE = sys.argv[1], sys.argv[2]
"""

SCRIPT = (
    SETUP
    + r"""
team = CareTeam.objects.create(name="Ward 7")
user = make_user("hema", "hematologist", (team,))
for mrn in ("L001", "L002", "L003"):
    services.patient_register(
        user=user, mrn=mrn, name="Lock Patient", infusion_date=date(2025, 3, 1), care_team=team
    )
rows = "".join(
    f"{mrn},2025-03-{d:02d}T06:00,crp,{d + 10},mg/L,\n"
    for mrn in ("L001", "L002", "L003")
    for d in range(2, 20)
)
data = ("mrn,collected_at,analyte,value,unit,note\n" + rows).encode()

# The bedside entry, made by another process through the ward's service, as a POST would.
BEDSIDE = '''
import sys, time
from datetime import datetime
import django
django.setup()
from django.contrib.auth.models import User
from django.utils import timezone
from patients import services
from patients.models import Patient
at = timezone.make_aware(datetime.fromisoformat(sys.argv[1]))
start = time.monotonic()
services.lab_record(
    user=User.objects.get(username="hema"), patient=Patient.objects.get(mrn="L001"),
    analyte="crp", value=sys.argv[2], unit="mg/L", collected_at=at,
)
print(round(time.monotonic() - start, 2))
'''


def bedside(at, value):
    done = subprocess.run(
        [sys.executable, "-c", BEDSIDE, at, value], capture_output=True, text=True, timeout=120
    )
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 else done.stderr[-300:]


class Probing(io.BytesIO):
    # The file is read twice (its MRNs, then its rows); when the second reading starts the
    # import is inside its reading transaction.
    reads = 0
    bedside = None

    def seek(self, *args):
        Probing.reads += 1
        if Probing.reads == 2 and MODE != "dry-lock":
            # Another key than the file's ("import"), or one of its keys with another value.
            at, value = ("2025-03-25T08:00", "99") if MODE != "conflict" else ("2025-03-05T06:00", "77")
            Probing.bedside = bedside(at, value)
        elif Probing.reads == 2:
            other = sqlite3.connect(DB, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("CREATE TABLE probe_write (x integer)")
                other.execute("COMMIT")
                Probing.bedside = "written"
            except sqlite3.OperationalError as exc:
                Probing.bedside = str(exc)
            finally:
                other.close()
        return super().seek(*args)


between_chunks = []


def on_progress(stage, done, total):
    if stage != "recompute":
        return
    if MODE == "killed":
        os._exit(9)  # the rows have committed, and the first chunk (a patient) is recomputed
    # Between two chunks of the recompute no transaction holds the lock: take it with no wait.
    other = sqlite3.connect(DB, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("COMMIT")
        between_chunks.append([done, total, PendingRecompute.objects.count()])
    except sqlite3.OperationalError as exc:
        between_chunks.append(str(exc))
    finally:
        other.close()


scoring.ACTIVATION_CHUNK = 1  # a commit per patient
report = imports.run_import(
    "labs", Probing(data), filename="labs.csv", user=user, dry_run=MODE.startswith("dry"),
    on_progress=on_progress,
)

# A job's progress inside a reading transaction goes through a connection of its own: the job
# page sees it at once, and it does not take the reading connection's write lock.
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
    "ok": report.ok, "errors": report.lines(), "created": report.created, "bedside": Probing.bedside,
    "reads": Probing.reads, "labs": LabResult.objects.count(), "progress_seen": seen,
    "between_chunks": between_chunks, "summaries": PatientSummary.objects.count(),
    "pending": PendingRecompute.objects.count(),
    "bedside_value": [
        int(v) for v in LabResult.objects.filter(value__in=(77, 99)).values_list("value", flat=True)
    ],
}))
"""
)

# After "killed": what the killed import left, then the recompute that finishes it.
FINISH = (
    SETUP
    + r"""
from tests.invariants import assert_stored_equals_scratch


def lagging(patient):
    try:
        assert_stored_equals_scratch(patient)
    except AssertionError:
        return True
    return False


left = {"labs": LabResult.objects.count(), "pending": PendingRecompute.objects.count(),
        "lagging": sum(lagging(p) for p in Patient.objects.all())}
done = scoring.recompute_pending()
for patient in Patient.objects.all():
    assert_stored_equals_scratch(patient)
print(json.dumps({"left": left, "done": done, "pending": PendingRecompute.objects.count()}))
"""
)


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return env | {
        "DATABASE_URL": f"sqlite:///{db}",
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "crsrisk.settings",
        "PYTHONPATH": str(ROOT),
    }


def _script(db: Path, script: str, mode: str, *, expect_kill: bool = False) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, str(db), mode],
        cwd=ROOT,
        env=_env(db),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if expect_kill:
        assert result.returncode == 9, result.stderr[-3000:]
        return {}
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _run(tmp_path: Path, mode: str, *, expect_kill: bool = False) -> dict:
    db = tmp_path / "lock.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=_env(db), check=True, timeout=300
    )
    return _script(db, SCRIPT, mode, expect_kill=expect_kill)


def test_a_check_holds_no_write_lock_and_its_progress_is_seen_at_once(tmp_path: Path) -> None:
    out = _run(tmp_path, "dry-lock")
    assert out["reads"] == 2  # the probe ran when the rows were read
    assert out["bedside"] == "written"  # another connection wrote meanwhile, with no wait
    assert out["ok"], out["errors"]  # and the check still reported the file as it is
    assert out["created"] == 54 and out["labs"] == 0  # a dry run: counted, nothing stored
    assert out["progress_seen"] == 3


def test_a_bedside_entry_is_saved_at_once_while_an_import_reads_its_file(tmp_path: Path) -> None:
    out = _run(tmp_path, "import")
    assert out["reads"] == 2
    # The entry was saved in well under SQLite's 20 s busy timeout: the import held no lock.
    assert float(out["bedside"]) < 5, out["bedside"]
    assert out["ok"], out["errors"]
    assert out["created"] == 54 and out["labs"] == 55  # the file and the bedside entry
    assert out["bedside_value"] == [99]
    # Between the recompute's chunks (a patient per commit here) the lock was free, and the
    # marks went one chunk at a time; all three patients have results and no mark is left.
    assert out["between_chunks"] == [[1, 3, 2], [2, 3, 1], [3, 3, 0]]
    assert out["summaries"] == 3 and out["pending"] == 0


def test_a_conflict_entered_while_the_file_is_read_refuses_it_under_the_lock(tmp_path: Path) -> None:
    out = _run(tmp_path, "conflict")
    assert float(out["bedside"]) < 5, out["bedside"]
    # The file says 13 for L001's CRP on 5 March at 06:00; the bedside stored 77 meanwhile.
    assert not out["ok"]
    assert any("conflict: crp of L001" in line and "stored as 77" in line for line in out["errors"]), out[
        "errors"
    ]
    assert out["labs"] == 1 and out["bedside_value"] == [77]  # nothing of the file stored
    assert out["between_chunks"] == [] and out["pending"] == 0


def test_an_import_killed_before_its_recompute_leaves_marks_that_the_next_recompute_finishes(
    tmp_path: Path,
) -> None:
    _run(tmp_path, "killed", expect_kill=True)
    out = _script(tmp_path / "lock.sqlite3", FINISH, "finish")
    # The rows (and the bedside entry) committed with their marks, and the first chunk its
    # patient's results; the other two patients' results lagged their rows until the recompute.
    assert out["left"] == {"labs": 55, "pending": 2, "lagging": 2}
    assert out["done"] == 2 and out["pending"] == 0  # and the results equal a recompute


# A chunked recompute (an import's, an activation's, a site parameter change's) hands the lock
# over between its commits: a writer waiting for it goes before the next chunk.
HANDOFF = (
    SETUP
    + r"""
from pathlib import Path

team = CareTeam.objects.create(name="Ward 7")
user = make_user("hema", "hematologist", (team,))
ids = [
    services.patient_register(
        user=user, mrn=f"H{i:03d}", name="Handoff Patient", infusion_date=date(2025, 3, 1), care_team=team
    ).pk
    for i in range(8)
]
state = Path(DB + ".state")
state.write_text("done 0")
recompute = scoring.recompute_patients
chunks_done = [0]


def heavy_chunk(chunk, **kwargs):
    # A chunk that holds the lock 0.4 s, as 200 patients with weeks of labs do.
    state.write_text(f"running {chunks_done[0]}")
    time.sleep(0.4)
    return recompute(chunk, **kwargs)


def progress(done, total):
    chunks_done[0] = done
    state.write_text(f"done {done}")


WAITER = '''
import json, sqlite3, sys, time
from pathlib import Path
state, seen = Path(sys.argv[2]), []
for _ in range(3):
    while True:  # a chunk holds the lock: start waiting for it now
        text = state.read_text()
        if text == "finished":
            break
        if text.startswith("running") and int(text.split()[1]) not in [s for s, _ in seen]:
            break
        time.sleep(0.005)
    if text == "finished":
        break
    conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    seen.append((int(text.split()[1]), state.read_text()))
    conn.execute("COMMIT")
    conn.close()
print(json.dumps(seen))
'''
waiter = subprocess.Popen([sys.executable, "-c", WAITER, DB, str(state)], stdout=subprocess.PIPE, text=True)
scoring.recompute_patients = heavy_chunk
scoring.ACTIVATION_CHUNK = 1
scoring.recompute_in_chunks(ids, progress)
scoring.recompute_patients = recompute
state.write_text("finished")
out, _ = waiter.communicate(timeout=60)
print(json.dumps({"seen": json.loads(out), "summaries": PatientSummary.objects.count()}))
"""
)


def test_a_writer_waiting_during_a_recompute_chunk_gets_the_lock_before_the_next_chunk(
    tmp_path: Path,
) -> None:
    db = tmp_path / "lock.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=_env(db), check=True, timeout=300
    )
    out = _script(db, HANDOFF, "handoff")
    # Each time, the waiter began while chunk k+1 ran (k done) and had the lock right after
    # that chunk's commit ("done k+1"), before the next chunk took it: SQLite's busy handler
    # would otherwise keep missing the instant between two commits.
    assert len(out["seen"]) == 3
    # ("running k" still: it woke between that commit and the progress write that follows it.)
    assert all(after in (f"done {k + 1}", f"running {k}") for k, after in out["seen"]), out["seen"]
    assert out["summaries"] == 8
