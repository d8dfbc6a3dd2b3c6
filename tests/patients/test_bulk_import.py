"""The streamed, set-based labs.csv import (patients/bulk.py): chunks, joins, a bounded report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from patients import bulk, imports
from patients.models import LabResult, Patient
from scoring.models import PendingRecompute
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
PATIENTS_HEADER = (
    "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct,"
    "lymphodepletion_start\n"
)
LABS_HEADER = "mrn,collected_at,analyte,value,unit,note\n"


def load(kind: str, data: str, **kwargs) -> imports.ImportReport:
    return imports.run_import(kind, data, filename=f"{kind}.csv", **kwargs)


@pytest.fixture
def two_patients() -> None:
    report = load(
        "patients", PATIENTS_HEADER + "B1,B 1,F,,,,,2025-03-01,5,1,\nB2,B 2,M,,,,,2025-03-01,5,1,\n"
    )
    assert report.ok, report.lines()


def _crp_rows(mrn: str, days: int) -> list[str]:
    return [f"{mrn},2025-03-{2 + d:02d}T06:00Z,crp,{40 + d},mg/L,\n" for d in range(days)]


def test_rows_across_many_chunks_go_in_once_with_one_history_row_each(two_patients, monkeypatch):
    monkeypatch.setattr(bulk, "CHUNK", 7)
    rows = _crp_rows("B1", 20) + _crp_rows("B2", 20)
    # The same row twice in the file is one row (skipped), in another chunk than its first.
    report = load("labs", LABS_HEADER + "".join(rows) + rows[3])
    assert report.ok, report.lines()
    assert (report.rows, report.created, report.skipped, report.patients_recomputed) == (41, 40, 1, 2)
    assert LabResult.objects.count() == 40
    history = LabResult.history.all()
    assert history.count() == 40 and {h.history_type for h in history} == {"+"}
    assert {h.history_change_reason for h in history} == {"imported"}
    for patient in Patient.objects.all():
        assert_stored_equals_scratch(patient)
    again = load("labs", LABS_HEADER + "".join(rows))
    assert again.ok and (again.created, again.skipped) == (0, 40)
    assert LabResult.history.count() == 40


def test_a_tenfold_jump_from_a_stored_value_is_flagged_and_reported(two_patients):
    assert load("labs", LABS_HEADER + "B1,2025-03-02T06:00Z,crp,10,mg/L,\n").ok
    report = load(
        "labs", LABS_HEADER + "B1,2025-03-03T06:00Z,crp,150,mg/L,\nB1,2025-03-04T06:00Z,crp,160,mg/L,\n"
    )
    assert report.ok, report.lines()
    jump = LabResult.objects.get(collected_at=datetime(2025, 3, 3, 6, tzinfo=UTC))
    steady = LabResult.objects.get(collected_at=datetime(2025, 3, 4, 6, tzinfo=UTC))
    assert jump.flags and not steady.flags
    assert [n for n in report.notes if "line 2: stored and flagged" in n]
    assert not [n for n in report.notes if "line 3" in n]


def test_a_refused_file_lists_the_first_1000_problems_then_counts_per_column(two_patients):
    bad = [f"NOPE{i},2025-03-02T06:00Z,crp,40,mg/L,\n" for i in range(1003)]
    bad.append("B1,2025-03-02T06:00Z,crp,forty,mg/L,\n")
    bad.append("B1,2025-03-02T06:00Z,crp,\n")
    report = load("labs", LABS_HEADER + "".join(bad))
    assert not report.ok
    # A row that cannot be read refuses the file as that alone, as before.
    assert [(e.line, e.column) for e in report.errors] == [(len(bad) + 1, "")]
    report = load("labs", LABS_HEADER + "".join(bad[:-1]))
    assert len(report.errors) == bulk.ERRORS_SHOWN
    assert [e.line for e in report.errors] == list(range(2, 1002))
    assert report.hidden_errors == {"mrn": 3, "value": 1}
    assert report.refused_rows == 1004 and report.error_count == 1004
    lines = report.lines()
    assert "labs.csv: 3 more problems in column mrn are not listed." in lines
    assert "labs.csv: 1 more problem in column value is not listed." in lines
    assert "1004 of 1004 row(s) have errors" in lines[-1] and "(1004 error(s))" in lines[-1]
    assert LabResult.objects.count() == 0


def test_labs_are_read_from_an_open_binary_file_a_line_at_a_time(two_patients, tmp_path):
    # CRLF, an old Mac CR and a byte-order mark: the same rows as the text gives.
    rows = _crp_rows("B1", 3) + _crp_rows("B2", 2)
    body = "\ufeff" + LABS_HEADER.replace("\n", "\r\n") + rows[0].replace("\n", "\r") + "".join(rows[1:])
    path = tmp_path / "labs.csv"
    path.write_bytes(body.encode("utf-8"))
    with path.open("rb") as fh:
        report = imports.run_import("labs", fh, filename="labs.csv")
    assert report.ok, report.lines()
    assert (report.rows, report.created) == (5, 5)
    assert LabResult.objects.count() == 5 and LabResult.history.count() == 5
    # import_file (manage.py import_labs) reads the open file: the same file again changes nothing.
    again = imports.import_file("labs", str(path))
    assert again.ok and (again.created, again.skipped) == (0, 5)


def test_a_byte_that_is_not_utf8_in_an_open_file_is_refused_with_its_line_and_byte(two_patients, tmp_path):
    head = (LABS_HEADER + _crp_rows("B1", 1)[0]).encode("utf-8")
    path = tmp_path / "labs.csv"
    path.write_bytes(head + b"B2,2025-03-02T06:00Z,crp,4\xff,mg/L,\n")
    with path.open("rb") as fh:
        report = imports.run_import("labs", fh, filename="labs.csv")
    assert not report.ok
    [error] = report.errors
    assert "UTF-8" in error.reason and error.line == 3
    assert f"byte {len(head) + len('B2,2025-03-02T06:00Z,crp,4') + 1}" in error.reason
    assert LabResult.objects.count() == 0
    # The same bytes given whole are refused with the same place.
    whole = imports.run_import("labs", path.read_bytes(), filename="labs.csv")
    assert [str(e) for e in whole.errors] == [str(error)]


def test_other_files_are_accepted_as_an_open_binary_file(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_bytes((PATIENTS_HEADER + "B9,B 9,F,,,,,2025-03-01,5,1,\n").encode("utf-8"))
    with path.open("rb") as fh:
        report = imports.run_import("patients", fh, filename="patients.csv")
    assert report.ok and report.created == 1, report.lines()


def test_a_value_checked_once_is_refused_or_accepted_on_every_line_it_appears(two_patients, monkeypatch):
    monkeypatch.setattr(bulk, "CHECKS_KEPT", 2)  # the kept answers are dropped as the file goes on
    rows = [
        "B1,2025-03-02T06:00Z,crp,abc,mg/L,\n",
        "B1,2025-03-03T06:00Z,crp,12,mg/L,\n",
        "B2,2025-03-02T06:00Z,crp,abc,mg/L,\n",
        "B2,2025-03-03T06:00Z,crp,12,mg/L,\n",
        "B2,2025-03-04T06:00Z,ldh,250,U/L,\n",
        "B1,2025-03-04T06:00Z,crp,abc,mg/L,\n",
    ]
    report = load("labs", LABS_HEADER + "".join(rows))
    assert not report.ok
    assert [(e.line, e.column, e.value) for e in report.errors] == [
        (2, "value", "abc"),
        (4, "value", "abc"),
        (7, "value", "abc"),
    ]
    assert len({e.reason for e in report.errors}) == 1
    assert LabResult.objects.count() == 0
    fixed = load("labs", LABS_HEADER + "".join(r for r in rows if ",abc," not in r))
    assert fixed.ok and fixed.created == 3
    assert {(lab.patient.mrn, str(lab.value)) for lab in LabResult.objects.filter(analyte="crp")} == {
        ("B1", "12.000000"),
        ("B2", "12.000000"),
    }


def test_a_time_checked_once_per_patient_is_refused_or_accepted_on_every_line_it_appears(
    two_patients, monkeypatch
):
    """A panel's rows share their time: checked once per (time, patient), the answer per patient."""
    monkeypatch.setattr(bulk, "CHECKS_KEPT", 2)  # the kept answers are dropped as the file goes on
    assert load("patients", PATIENTS_HEADER + "B3,B 3,F,,,,,2025-09-01,5,1,\n").ok
    rows = [
        "B1,2025-03-02T06:00Z,crp,40,mg/L,\n",  # line 2: day 1 of B1
        "B3,2025-03-02T06:00Z,crp,40,mg/L,\n",  # the same time is long before B3's infusion
        "B1,2025-03-02T06:00Z,ldh,250,U/L,\n",
        "B3,2025-03-02T06:00Z,ldh,250,U/L,\n",  # line 5
        "B1,2025-03-03 25:00,crp,41,mg/L,\n",  # not a time, for either patient
        "B3,2025-03-03 25:00,crp,41,mg/L,\n",
        "B1,2025-03-03T06:00Z,crp,41,mg/L,\n",
        "B3,2025-03-02T06:00Z,il6,30,pg/mL,\n",  # line 9: after the kept answers were dropped
    ]
    report = load("labs", LABS_HEADER + "".join(rows))
    assert not report.ok
    assert [(e.line, e.column) for e in report.errors] == [
        (3, "collected_at"),
        (5, "collected_at"),
        (6, "collected_at"),
        (7, "collected_at"),
        (9, "collected_at"),
    ]
    day_errors = [e.reason for e in report.errors if e.line in (3, 5, 9)]
    assert len(set(day_errors)) == 1 and "outside the accepted range" in day_errors[0]
    assert report.errors[2].reason == report.errors[3].reason != day_errors[0]
    assert LabResult.objects.count() == 0
    fixed = load("labs", LABS_HEADER + "".join(r for r in rows if r.startswith("B1,") and "25:00" not in r))
    assert fixed.ok and fixed.created == 3, fixed.lines()
    assert sorted(str(lab.collected_at) for lab in LabResult.objects.all()) == [
        "2025-03-02 06:00:00+00:00",
        "2025-03-02 06:00:00+00:00",
        "2025-03-03 06:00:00+00:00",
    ]


def test_a_key_again_in_the_file_is_skipped_when_the_same_and_refused_with_its_first_line_otherwise(
    two_patients,
):
    rows = [
        "B1,2025-03-02T06:00Z,crp,40,mg/L,\n",  # line 2
        "B2,2025-03-02T06:00Z,crp,40,mg/L,\n",
        "B1,2025-03-02T06:00Z,crp,40,mg/L,\n",  # line 4: the same, skipped
        "B1,2025-03-02T06:00Z,crp,41,mg/L,\n",  # line 5: another value, refused
    ]
    report = load("labs", LABS_HEADER + "".join(rows))
    assert not report.ok
    [error] = report.errors
    assert (error.line, error.column, error.value) == (5, "value", "41")
    assert "first on line 2" in error.reason and "B1" in error.reason
    assert LabResult.objects.count() == 0
    report = load("labs", LABS_HEADER + "".join(rows[:3]))
    assert report.ok and (report.created, report.skipped) == (2, 1)
    assert LabResult.objects.count() == 2


# --- checked with no lock, written under it (issue 11) -----------------------------------------
# ``on_progress("write", 0, 0)`` is heard between the two: the file has been read and checked,
# and its rows are about to be written. What a bedside entry does there is checked again.


@pytest.fixture
def hema(db):
    from tests.conftest import make_user

    return make_user("hema-bulk", "hematologist", all_teams=True)


def _between_check_and_write(action):
    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "write":
            action()

    return on_progress


def test_a_value_entered_between_the_check_and_the_write_is_a_conflict(two_patients, hema):
    from datetime import datetime as dt

    from patients import services

    def enter() -> None:
        services.lab_record(
            user=hema,
            patient=Patient.objects.get(mrn="B1"),
            analyte="crp",
            value="77",
            unit="mg/L",
            collected_at=dt(2025, 3, 3, 6, tzinfo=UTC),
        )

    report = load(
        "labs", LABS_HEADER + "".join(_crp_rows("B1", 3)), on_progress=_between_check_and_write(enter)
    )
    assert not report.ok
    assert any("conflict: crp of B1" in line and "stored as 77" in line for line in report.lines()), (
        report.lines()
    )
    assert list(LabResult.objects.values_list("value", flat=True)) == [77]  # only the bedside entry
    assert not PendingRecompute.objects.exists()


def test_an_infusion_date_changed_between_the_check_and_the_write_refuses_the_file(two_patients, hema):
    from datetime import date

    from patients import services

    def move() -> None:
        patient = Patient.objects.get(mrn="B2")
        services.patient_update(
            user=hema,
            patient=patient,
            expected_version=patient.version,
            reason="typo",
            infusion_date=date(2025, 2, 27),
        )

    rows = _crp_rows("B1", 2) + _crp_rows("B2", 2)
    report = load("labs", LABS_HEADER + "".join(rows), on_progress=_between_check_and_write(move))
    assert not report.ok
    assert report.lines()[0] == (
        "labs.csv: patient B2 changed while the file was checked (infusion date, death or care team); "
        "nothing was imported: import the file again"
    )
    assert not LabResult.objects.exists() and not PendingRecompute.objects.exists()


def test_a_death_recorded_between_the_check_and_the_write_refuses_the_file(two_patients, hema):
    from datetime import date

    from patients import services

    def die() -> None:
        services.event_record(
            user=hema,
            patient=Patient.objects.get(mrn="B1"),
            kind="death",
            date=date(2025, 3, 20),
            detail="other",
        )

    report = load(
        "labs", LABS_HEADER + "".join(_crp_rows("B1", 2)), on_progress=_between_check_and_write(die)
    )
    assert not report.ok and "patient B1 changed while the file was checked" in report.lines()[0]
    assert not LabResult.objects.exists()


def test_an_import_marks_its_patients_and_clears_each_mark_with_their_recompute(two_patients, monkeypatch):
    from scoring import services as scoring_services

    monkeypatch.setattr(scoring_services, "ACTIVATION_CHUNK", 1)
    seen = []

    def on_progress(stage: str, done: int, total: int) -> None:
        seen.append((stage, done, total, PendingRecompute.objects.count()))

    report = load(
        "labs", LABS_HEADER + "".join(_crp_rows("B1", 2) + _crp_rows("B2", 2)), on_progress=on_progress
    )
    assert report.ok and report.patients_recomputed == 2
    # Both marked with the rows; one cleared per chunk, with that chunk's recompute.
    assert seen == [("write", 0, 0, 0), ("recompute", 1, 2, 1), ("recompute", 2, 2, 0)]
    for patient in Patient.objects.all():
        assert_stored_equals_scratch(patient)


def _bedside_crp(hema, mrn: str, day: int, value: str) -> None:
    from patients import services

    services.lab_record(
        user=hema,
        patient=Patient.objects.get(mrn=mrn),
        analyte="crp",
        value=value,
        unit="mg/L",
        collected_at=datetime(2025, 3, day, 6, tzinfo=UTC),
        confirmed=True,
    )


def _crp_on(day: int) -> LabResult:
    return LabResult.objects.get(analyte="crp", collected_at=datetime(2025, 3, day, 6, tzinfo=UTC))


def test_a_value_entered_meanwhile_before_a_file_row_makes_it_a_tenfold_jump(two_patients, hema):
    _bedside_crp(hema, "B1", 2, "40")
    report = load(
        "labs",
        LABS_HEADER + "B1,2025-03-04T06:00Z,crp,45,mg/L,\n",
        on_progress=_between_check_and_write(lambda: _bedside_crp(hema, "B1", 3, "4")),
    )
    assert report.ok, report.lines()
    # 45 after 4 is a ×10 jump, though it was not after 40 when the file was checked.
    assert _crp_on(4).flags and not _crp_on(2).flags
    assert [n for n in report.notes if "line 2: stored and flagged" in n], report.notes


def test_a_value_entered_meanwhile_can_end_a_tenfold_jump_of_a_file_row(two_patients, hema):
    _bedside_crp(hema, "B1", 2, "4")
    report = load(
        "labs",
        LABS_HEADER + "B1,2025-03-04T06:00Z,crp,45,mg/L,\nB2,2025-03-04T06:00Z,crp,45,mg/L,\n",
        on_progress=_between_check_and_write(lambda: _bedside_crp(hema, "B1", 3, "40")),
    )
    assert report.ok, report.lines()
    # Checked, 45 after 4 was a jump; written, it follows 40 and is not: flag and note are gone.
    assert not LabResult.objects.get(
        patient__mrn="B1", collected_at=datetime(2025, 3, 4, 6, tzinfo=UTC)
    ).flags
    assert not [n for n in report.notes if "line 2" in n], report.notes


def test_the_same_value_entered_meanwhile_at_a_file_row_is_skipped_not_doubled(two_patients, hema):
    report = load(
        "labs",
        LABS_HEADER + "".join(_crp_rows("B1", 2)),  # crp 40 on 2 March, 41 on 3 March
        on_progress=_between_check_and_write(lambda: _bedside_crp(hema, "B1", 3, "41")),
    )
    assert report.ok, report.lines()
    assert (report.created, report.skipped) == (1, 1)
    assert LabResult.objects.count() == 2
    assert _crp_on(3).source != "csv"  # the bedside row, not a second one
    assert LabResult.history.filter(id=_crp_on(3).pk).count() == 1


def test_under_the_lock_only_the_patients_changed_since_the_check_are_checked_again(two_patients, hema):
    """SQLite holds one write lock for the database: the write re-checks only what changed.

    On PostgreSQL, where only the file's patients are locked, the check runs once, there.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def run(action) -> list[str]:
        capture = CaptureQueriesContext(connection)

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage == "write":
                action()
                capture.__enter__()

        rows = _crp_rows("B1", 2) + _crp_rows("B2", 2)
        report = load("labs", LABS_HEADER + "".join(rows), on_progress=on_progress, recompute=False)
        capture.__exit__(None, None, None)
        assert report.ok, report.lines()
        return [q["sql"] for q in capture.captured_queries if "SET lab_id" in q["sql"]]

    b1, b2 = (Patient.objects.get(mrn=m).pk for m in ("B1", "B2"))
    unchanged = run(lambda: None)
    LabResult.objects.all().delete()
    changed = run(lambda: _bedside_crp(hema, "B2", 20, "40"))
    if connection.vendor == "sqlite":
        assert unchanged == []
        assert len(changed) == 1 and f"IN ({b2})" in changed[0] and str(b1) not in changed[0].split("IN")[-1]
    else:
        assert len(unchanged) == 1 and len(changed) == 1 and " IN (" not in changed[0]


def test_a_skipped_row_corrected_meanwhile_keeps_the_bedside_correction(two_patients, hema):
    """A bedside correction made between the check and the write of a row equal to it stands.

    On SQLite the row skipped as identical at the check (before the lock) stays skipped: the
    import counts as made first, and the file's earlier value neither conflicts with the
    correction nor overwrites it. On PostgreSQL the check runs once, under the lock, after the
    correction: the file's value is then a conflict and the file is refused. Either way the
    correction is kept, with its history.
    """
    from django.db import connection

    from patients import services

    _bedside_crp(hema, "B1", 3, "41")

    def correct() -> None:
        lab = _crp_on(3)
        services.lab_correct(user=hema, lab=lab, expected_version=lab.version, value="50", reason="typo")

    report = load(
        "labs",
        LABS_HEADER + "".join(_crp_rows("B1", 2)),  # 40 on 2 March; 41 on 3 March, as stored
        on_progress=_between_check_and_write(correct),
    )
    if connection.vendor == "sqlite":
        assert report.ok, report.lines()
        assert (report.created, report.skipped) == (1, 1)
        assert _crp_on(2).value == 40
    else:
        assert not report.ok
        assert any("conflict: crp of B1" in line and "stored as 50" in line for line in report.lines())
        assert LabResult.objects.count() == 1
    assert _crp_on(3).value == 50
    assert [h.history_type for h in LabResult.history.filter(id=_crp_on(3).pk).order_by("history_id")] == [
        "+",
        "~",
    ]
