"""The import and export commands (SPEC 8.3): report on stderr, non-zero exit on refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from patients.models import DataTransfer, LabResult, Patient
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    err = StringIO()
    call_command(*args, stderr=err, stdout=StringIO())
    return err.getvalue()


def test_import_commands_load_fixtures_and_report(hematologist):
    for kind in ("patients", "labs", "observations", "events"):
        out = run(f"import_{kind}", str(FIXTURES / f"{kind}.csv"), "--user", hematologist.username)
        assert "created" in out
    assert DataTransfer.objects.filter(direction="import", user=hematologist, accepted=True).count() == 4
    for patient in Patient.objects.all():
        assert_stored_equals_scratch(patient)


def test_refused_file_raises_command_error_and_lists_rows():
    run("import_patients", str(FIXTURES / "patients.csv"))
    err = StringIO()
    with pytest.raises(CommandError, match="refused"):
        call_command("import_labs", str(FIXTURES / "labs_bad.csv"), stderr=err)
    assert "line 2, column value" in err.getvalue() and "line 7, column collected_at" in err.getvalue()
    assert not LabResult.objects.exists()


def test_dry_run_and_correct_options():
    run("import_patients", str(FIXTURES / "patients.csv"))
    out = run("import_labs", str(FIXTURES / "labs.csv"), "--dry-run")
    assert "dry run" in out and not LabResult.objects.exists()
    with pytest.raises(CommandError, match="--reason"):
        run("import_labs", str(FIXTURES / "labs.csv"), "--reason", "x")
    with pytest.raises(CommandError, match="no such user"):
        run("import_labs", str(FIXTURES / "labs.csv"), "--user", "ghost")
    with pytest.raises(CommandError, match="cannot read"):
        run("import_labs", str(FIXTURES / "missing.csv"))


def test_events_command_has_no_correct_option():
    with pytest.raises(CommandError):
        run("import_events", str(FIXTURES / "events.csv"), "--correct")


def test_export_cohort_command(tmp_path):
    run("import_patients", str(FIXTURES / "patients.csv"))
    out = run("export_cohort", str(tmp_path / "out"))
    assert "exported 2 patient(s)" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "assessments.csv",
        "events.csv",
        "labs.csv",
        "observations.csv",
        "patients.csv",
        "summary.csv",
    ]


# A separate process with its own fresh SQLite file in tmp_path, whatever DATABASE_URL names:
# it runs once, on the first database of CI.
@pytest.mark.nodb
def test_subprocess_exit_code_and_stderr(tmp_path):
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    ok = subprocess.run(
        [*manage, "import_patients", str(FIXTURES / "patients.csv")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "created 2" in ok.stderr and ok.stdout == ""
    bad = subprocess.run(
        [*manage, "import_labs", str(FIXTURES / "labs_bad.csv")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "labs_bad.csv, line 2, column value" in bad.stderr and "decimal point" in bad.stderr
