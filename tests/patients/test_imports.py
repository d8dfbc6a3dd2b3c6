"""CSV imports of SPEC 8.2: whole-file validation, idempotence, conflicts, bulk recompute."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients import imports
from patients.models import (
    CareTeam,
    ClinicalEvent,
    DataTransfer,
    Infusion,
    LabResult,
    Observation,
    Patient,
)
from scoring import services as scoring_services
from scoring.models import DailyAssessment, PatientSummary
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PATIENTS_HEADER = (
    "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct,"
    "lymphodepletion_start\n"
)
LABS_HEADER = "mrn,collected_at,analyte,value,unit,note\n"
OBS_HEADER = "mrn,date,tmax_c,hypotension,oxygen,antipyretic,tocilizumab,corticosteroids\n"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(kind: str, data: bytes | str, **kwargs) -> imports.ImportReport:
    return imports.run_import(kind, data, filename=f"{kind}.csv", **kwargs)


def load_fixtures(user=None) -> None:
    for kind in ("patients", "labs", "observations", "events"):
        report = load(kind, fixture(f"{kind}.csv"), user=user)
        assert report.ok, report.lines()


def assert_all_consistent() -> None:
    for patient in Patient.objects.all():
        assert_stored_equals_scratch(patient)


def test_fixture_files_import_and_recompute(hematologist):
    load_fixtures(hematologist)
    a1 = Patient.objects.get(mrn="A001")
    assert a1.care_team.name == "Ward 7"
    assert a1.infusion.lymphodepletion_start == date(2025, 2, 24)
    crp = LabResult.objects.get(patient=a1, analyte="crp")
    assert (crp.value, crp.entered_value, crp.entered_unit, crp.source) == (
        Decimal(250),
        "25",
        "mg/dL",
        "csv",
    )
    ferritin = LabResult.objects.get(patient=a1, analyte="ferritin")
    assert (ferritin.value, ferritin.loinc) == (Decimal(12000), "2276-4")
    bcell = LabResult.objects.get(patient=a1, analyte="bcell")
    assert (bcell.comparator, bcell.value) == ("<", Decimal(1))
    summary = PatientSummary.objects.get(patient=a1)
    assert (summary.day7_points, summary.day7_band, summary.day7_complete) == (4, "high", True)
    assert DailyAssessment.objects.get(patient=a1, day=2).crs_grade == 3
    assert ClinicalEvent.objects.filter(patient=a1).count() == 2
    history = crp.history.first()
    assert (history.history_user, history.history_change_reason) == (hematologist, "imported")
    assert_all_consistent()


def test_script_name_is_stored_unchanged_and_empty_team_is_default():
    load("patients", fixture("patients.csv"))
    a2 = Patient.objects.get(mrn="A002")
    assert a2.name == "<script>alert(1)</script>"
    assert a2.care_team.name == "Default"
    assert (a2.sex, a2.diagnosis) == ("M", "B-ALL")


def test_new_care_team_is_created_and_reported():
    report = load("patients", fixture("patients.csv"))
    assert CareTeam.objects.filter(name="Ward 7").exists()
    assert any("'Ward 7' was created" in line for line in report.lines())


def test_bad_file_reports_every_bad_row_and_imports_nothing():
    load("patients", fixture("patients.csv"))
    before = DailyAssessment.objects.count()
    report = load("labs", fixture("labs_bad.csv"))
    assert not report.ok
    by_line = {(e.line, e.column): e for e in report.errors}
    assert set(by_line) == {
        (2, "value"),
        (3, "unit"),
        (4, "analyte"),
        (5, "mrn"),
        (6, "collected_at"),
        (7, "collected_at"),
    }
    assert "decimal point" in by_line[(2, "value")].reason
    assert by_line[(2, "value")].value == "12,5"
    assert "accepted: µg/L, ng/mL, pmol/L" in by_line[(3, "unit")].reason
    assert "high-sensitivity" in by_line[(4, "analyte")].reason
    assert "outside the accepted range" in by_line[(6, "collected_at")].reason
    assert "ISO 8601" in by_line[(7, "collected_at")].reason
    text = "\n".join(report.lines())
    assert "labs.csv, line 2, column value" in text and "nothing was imported" in text
    assert not LabResult.objects.exists()
    assert DailyAssessment.objects.count() == before
    audit = DataTransfer.objects.get(kind="labs")
    assert (audit.accepted, audit.rows_refused, audit.rows_created) == (False, 6, 0)


def test_bad_patient_rows_all_reported():
    data = (
        PATIENTS_HEADER
        + "bad mrn!,X,F,,,,,2025-03-01,,,\n"
        + 'B1,,Q,,,,,,101,"3,5",\n'
        + "B2,Ok,F,2026-01-01,,,,2025-03-01,,,2025-03-05\n"
    )
    report = load("patients", data)
    got = {(e.line, e.column) for e in report.errors}
    assert got == {
        (2, "mrn"),
        (3, "name"),
        (3, "sex"),
        (3, "infusion_date"),
        (3, "baseline_mrd_pct"),
        (3, "post_ld_mrd_pct"),
        (4, "birth_date"),
        (4, "lymphodepletion_start"),
    }
    assert not Patient.objects.exists()


def test_header_errors_are_reported():
    report = load("labs", "mrn;collected_at;analyte;value;unit;note\nA;b;c;d;e;f\n")
    assert "commas" in report.errors[0].reason
    report = load("labs", "mrn,colected_at,analyte,value,unit,note\n")
    assert {e.column for e in report.errors} == {"colected_at", "collected_at"}
    report = load("labs", "")
    assert "empty" in report.errors[0].reason


def test_lymphodepletion_column_is_optional():
    data = PATIENTS_HEADER.replace(",lymphodepletion_start", "") + "C1,Carl,M,,,,,2025-03-01,,\n"
    assert load("patients", data).ok
    assert Infusion.objects.get(patient__mrn="C1").lymphodepletion_start is None


def test_utf8_bom_is_tolerated_and_non_utf8_refused():
    data = "\ufeff" + PATIENTS_HEADER + "D1,Dörte,F,,,,,2025-03-01,,,\n"
    assert load("patients", data.encode("utf-8")).ok
    report = load("patients", (PATIENTS_HEADER + "D2,Dörte,F,,,,,2025-03-01,,,\n").encode("latin-1"))
    assert not report.ok and "UTF-8" in report.errors[0].reason and report.errors[0].line == 2


def test_lab_unit_and_note_columns_are_optional_behind_a_byte_order_mark():
    load("patients", fixture("patients.csv"))
    data = "\ufeffmrn,collected_at,analyte,value\nA001,2025-03-08T06:30:00+00:00,crp,25\n"
    report = load("labs", data.encode("utf-8"))
    assert report.ok, report.lines()
    lab = LabResult.objects.get(patient__mrn="A001", analyte="crp")
    assert (lab.value, lab.entered_unit, lab.note) == (Decimal("25"), "", "")
    # Only the note absent, columns in another order.
    data = "note,mrn,value,analyte,collected_at,unit\nre-run,A001,30,crp,2025-03-09T06:30:00+00:00,mg/dL\n"
    assert load("labs", data).ok
    assert LabResult.objects.get(patient__mrn="A001", value=300).note == "re-run"


def test_unknown_column_is_refused_by_name_and_nothing_imported():
    load("patients", fixture("patients.csv"))
    report = load(
        "labs", "mrn,collected_at,analyte,value,units\nA001,2025-03-08T06:30:00+00:00,crp,25,mg/L\n"
    )
    assert [(e.line, e.column) for e in report.errors] == [(1, "units")]
    assert "unknown column units" in str(report.errors[0])
    assert not LabResult.objects.exists()


def test_naive_time_is_site_time_and_bare_date_is_noon(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    load("patients", fixture("patients.csv"))
    data = (
        LABS_HEADER
        + "A001,2025-03-08T01:30,crp,10,,\nA001,2025-03-09,crp,20,,\nA001,2025-03-10T01:30Z,crp,30,,\n"
    )
    assert load("labs", data).ok
    shanghai = ZoneInfo("Asia/Shanghai")
    times = list(LabResult.objects.order_by("collected_at").values_list("collected_at", flat=True))
    assert times[0] == datetime(2025, 3, 8, 1, 30, tzinfo=shanghai)
    assert times[1] == datetime(2025, 3, 9, 12, 0, tzinfo=shanghai)
    assert times[2] == datetime(2025, 3, 10, 1, 30, tzinfo=ZoneInfo("UTC"))
    # 01:30 in Shanghai on 8 March is still day 7 (not day 6 as in UTC).
    a1 = Patient.objects.get(mrn="A001")
    row = DailyAssessment.objects.get(patient=a1, day=7)
    crp = next(f for f in row.factors if f["code"] == "crp_d7")
    assert crp["value"] == "10.000000" and crp["day"] == 7
    assert_all_consistent()


def test_out_of_range_day_refused():
    load("patients", fixture("patients.csv"))
    obs = OBS_HEADER + "A001,2025-01-01,37,none,none,0,0,0\n"
    report = load("observations", obs)
    assert [(e.line, e.column) for e in report.errors] == [(2, "date")]
    assert "−59" in report.errors[0].reason


def test_reimport_is_idempotent():
    load_fixtures()
    counts = (LabResult.objects.count(), Observation.objects.count(), ClinicalEvent.objects.count())
    history = LabResult.history.count()
    for kind in ("patients", "labs", "observations", "events"):
        report = load(kind, fixture(f"{kind}.csv"))
        assert report.ok and report.created == 0 and report.updated == 0
        assert report.skipped == report.rows
    assert (LabResult.objects.count(), Observation.objects.count(), ClinicalEvent.objects.count()) == counts
    assert LabResult.history.count() == history


def test_conflict_refuses_whole_file_and_correct_keeps_history(hematologist):
    load_fixtures()
    data = (
        LABS_HEADER
        + "A001,2025-03-08T06:30:00+00:00,crp,26,mg/dL,\n"
        + "A001,2025-03-20T06:30:00+00:00,crp,5,mg/L,new row\n"
    )
    report = load("labs", data)
    assert [(e.line, e.column) for e in report.errors] == [(2, "value")]
    assert "conflict" in report.errors[0].reason and "--correct" in report.errors[0].reason
    assert LabResult.objects.filter(analyte="crp").count() == 2
    report = load("labs", data, correct=True, reason="lab re-issued the report", user=hematologist)
    assert report.ok and (report.created, report.updated) == (1, 1)
    crp = LabResult.objects.get(
        analyte="crp", collected_at=datetime(2025, 3, 8, 6, 30, tzinfo=ZoneInfo("UTC"))
    )
    assert crp.value == Decimal(260) and crp.version == 2
    latest, previous = crp.history.all()[:2]
    assert latest.history_change_reason == "corrected by import: lab re-issued the report"
    assert latest.history_user == hematologist
    assert previous.value == Decimal(250)
    assert_all_consistent()


def test_correct_without_reason_is_refused():
    load_fixtures()
    report = load("labs", fixture("labs.csv"), correct=True)
    assert not report.ok and "reason" in report.errors[0].reason


def test_observation_conflict_and_correction():
    load_fixtures()
    data = OBS_HEADER + "A001,2025-03-03,38.4,none,low_flow,1,1,0\n"
    report = load("observations", data)
    assert [(e.line, e.column) for e in report.errors] == [(2, "hypotension")]
    assert load("observations", data, correct=True, reason="charting error").ok
    obs = Observation.objects.get(patient__mrn="A001", date=date(2025, 3, 3))
    assert obs.hypotension == "none" and obs.history.count() == 2
    assert_all_consistent()


def test_observation_values_checked():
    load("patients", fixture("patients.csv"))
    data = OBS_HEADER + "A001,2025-03-03,29.9,low,none,yes,0,2\n"
    report = load("observations", data)
    assert {e.column for e in report.errors} == {"tmax_c", "hypotension", "antipyretic", "corticosteroids"}


def test_patient_conflict_and_correction():
    load("patients", fixture("patients.csv"))
    changed = fixture("patients.csv").decode().replace("Ada Example", "Ada Exemplar")
    report = load("patients", changed)
    assert [(e.line, e.column) for e in report.errors] == [(2, "name")]
    assert load("patients", changed, correct=True, reason="spelling").ok
    p = Patient.objects.get(mrn="A001")
    assert (
        p.name == "Ada Exemplar"
        and p.history.first().history_change_reason == "corrected by import: spelling"
    )


def test_events_skip_exact_duplicates_and_check_details():
    load_fixtures()
    data = "mrn,date,event,detail\nA001,2025-03-29,cr,\nA001,2025-03-29,cr,\nA001,2025-04-02,death,\n"
    report = load("events", data)
    assert [(e.line, e.column) for e in report.errors] == [(4, "detail")]
    report = load("events", data.rsplit("A001,2025-04-02", 1)[0])
    assert report.ok and (report.created, report.skipped) == (0, 2)


def test_dry_run_writes_nothing():
    report = load("patients", fixture("patients.csv"), dry_run=True)
    assert report.ok and report.created == 2 and report.dry_run
    assert "would be created" in "\n".join(report.lines())
    assert not Patient.objects.exists() and not CareTeam.objects.filter(name="Ward 7").exists()
    assert DataTransfer.objects.get().dry_run is True


def _lab_lines(mrn: str, n: int) -> str:
    lines = []
    analytes = ("crp", "ferritin", "il6", "aptt", "anc", "platelets", "ldh")
    values = {"crp": 40, "ferritin": 900, "il6": 20, "aptt": 35, "anc": 1.1, "platelets": 90, "ldh": 300}
    for i in range(n):
        a = analytes[i % len(analytes)]
        lines.append(
            f"{mrn},2025-03-0{2 + (i // len(analytes)) % 3}T{6 + i // 21:02d}:00Z,{a},{values[a]},,\n"
        )
    return "".join(lines)


def test_bulk_import_query_count_does_not_grow_with_rows():
    patients = PATIENTS_HEADER + "".join(f"Q{i},Q {i},F,,,,,2025-03-01,5,1,\n" for i in range(4))
    load("patients", patients)
    with CaptureQueriesContext(connection) as few:
        assert load("labs", LABS_HEADER + _lab_lines("Q0", 3) + _lab_lines("Q1", 3)).ok
    # 20 rows a patient: SQLite splits an INSERT above 999 variables, which is not per row.
    with CaptureQueriesContext(connection) as many:
        assert load("labs", LABS_HEADER + _lab_lines("Q2", 20) + _lab_lines("Q3", 20)).ok
    assert LabResult.objects.filter(patient__mrn="Q3").count() == 20
    assert len(many.captured_queries) == len(few.captured_queries)
    assert_all_consistent()


def test_recompute_called_once_for_all_patients(monkeypatch):
    load("patients", fixture("patients.csv"))
    calls = []
    real = scoring_services.recompute_patients

    def spy(ids, **kwargs):
        calls.append(sorted(ids))
        return real(ids, **kwargs)

    # labs.csv: after its rows, the marked patients a chunk at a time (``recompute_pending``).
    monkeypatch.setattr(scoring_services, "recompute_patients", spy)
    assert load("labs", fixture("labs.csv")).ok
    ids = sorted(Patient.objects.values_list("pk", flat=True))
    assert calls == [ids]


BERLIN_PATIENT = PATIENTS_HEADER.replace(",lymphodepletion_start\n", "\n") + "D1,Dst,F,,,,,2025-10-20,,\n"


@pytest.mark.parametrize(
    "row",
    [
        "D1,2025-10-26T01:30Z,crp,10,,\n",  # an explicit instant
        "D1,2025-10-26T03:30,crp,10,,\n",  # an unambiguous local time
        "D1,2025-10-26T04:30+02:00,crp,10,,\n",  # an offset other than the site's
    ],
)
def test_reimport_is_idempotent_across_daylight_saving_time(settings, row):
    settings.TIME_ZONE = "Europe/Berlin"
    assert load("patients", BERLIN_PATIENT).ok
    assert load("labs", LABS_HEADER + row).created == 1
    again = load("labs", LABS_HEADER + row)
    assert again.ok and (again.created, again.skipped) == (0, 1)
    assert LabResult.objects.count() == 1


def test_same_instant_twice_in_one_file_is_one_row(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    assert load("patients", BERLIN_PATIENT).ok
    report = load("labs", LABS_HEADER + "D1,2025-10-26T03:30,crp,10,,\nD1,2025-10-26T02:30Z,crp,10,,\n")
    assert report.ok, report.lines()
    assert LabResult.objects.count() == 1


@pytest.mark.parametrize(
    ("local", "problem"),
    [("2025-10-26T02:30", "occurs twice"), ("2025-03-30T02:30", "does not exist")],
)
def test_local_times_in_a_daylight_saving_fold_or_gap_are_refused(settings, local, problem):
    settings.TIME_ZONE = "Europe/Berlin"
    assert load("patients", BERLIN_PATIENT.replace("2025-10-20", "2025-03-25")).ok
    report = load("labs", LABS_HEADER + f"D1,{local},crp,10,,\n")
    assert not report.ok
    (error,) = report.errors
    assert (error.line, error.column) == (2, "collected_at")
    assert problem in error.reason and "offset" in error.reason
    assert not LabResult.objects.exists()


def test_corrected_infusion_date_may_not_push_stored_labs_out_of_range(hematologist):
    load_fixtures(hematologist)
    row = PATIENTS_HEADER.replace(",lymphodepletion_start\n", "\n") + "A001,x,F,,Ward 7,,,2027-03-01,,\n"
    stored = Patient.objects.get(mrn="A001").infusion.infusion_date
    report = load("patients", row, correct=True, reason="wrong year")
    assert not report.ok
    assert any(e.column == "infusion_date" and "outside" in e.reason for e in report.errors)
    assert Patient.objects.get(mrn="A001").infusion.infusion_date == stored


def test_report_lists_conflicts_beside_bad_rows(hematologist):
    load_fixtures(hematologist)
    crp = LabResult.objects.get(patient__mrn="A001", analyte="crp")
    when = crp.collected_at.isoformat()
    text = LABS_HEADER + f"A001,{when},crp,999,mg/L,\nA001,2025-03-09T06:00,crp,5,mmol/L,\n"
    report = load("labs", text)
    assert {(e.line, e.column) for e in report.errors} == {(2, "value"), (3, "unit")}
    assert "conflict" in next(e.reason for e in report.errors if e.line == 2)


def test_values_outside_the_usual_range_are_stored_and_reported_as_flagged(hematologist):
    load_fixtures(hematologist)
    report = load("labs", LABS_HEADER + "A001,2025-03-12T06:00,crp,600,mg/L,\n")
    assert report.ok and report.created == 1
    assert any("line 2: stored and flagged" in note and "CRP" in note for note in report.notes)
    lab = LabResult.objects.get(patient__mrn="A001", analyte="crp", value=600)
    assert lab.flags


def test_reimport_does_not_bring_back_a_voided_value(hematologist):
    from patients import services

    load_fixtures(hematologist)
    crp = LabResult.objects.get(patient__mrn="A001", analyte="crp")
    services.lab_void(user=hematologist, lab=crp, expected_version=crp.version, reason="haemolysed")
    report = load("labs", fixture("labs.csv"))
    assert report.ok and report.created == 0
    assert any("voided" in note and "haemolysed" in note for note in report.notes)
    assert not LabResult.objects.active().filter(patient__mrn="A001", analyte="crp").exists()
    assert_all_consistent()


def test_reimport_does_not_bring_back_a_voided_observation_day(hematologist):
    from patients import services

    load_fixtures(hematologist)
    obs = Observation.objects.filter(patient__mrn="A001").order_by("date").first()
    services.observation_void(
        user=hematologist, observation=obs, expected_version=obs.version, reason="wrong bed"
    )
    report = load("observations", fixture("observations.csv"))
    assert report.ok and report.created == 0
    assert any("voided" in note and "wrong bed" in note for note in report.notes)
    assert not Observation.objects.active().filter(patient__mrn="A001", date=obs.date).exists()
    assert_all_consistent()


def test_reimport_of_other_values_on_a_voided_observation_day_stores_them(hematologist):
    from patients import services

    load_fixtures(hematologist)
    obs = Observation.objects.filter(patient__mrn="A001").order_by("date").first()
    services.observation_void(
        user=hematologist, observation=obs, expected_version=obs.version, reason="wrong bed"
    )
    tmax = Decimal("39.9") if obs.tmax_c != Decimal("39.9") else Decimal("38.1")
    report = load("observations", OBS_HEADER + f"A001,{obs.date:%Y-%m-%d},{tmax},none,none,0,0,0\n")
    assert report.ok and report.created == 1, report.lines()
    assert Observation.objects.active().get(patient__mrn="A001", date=obs.date).tmax_c == tmax
    assert_all_consistent()


def test_a_second_death_is_a_conflict(hematologist):
    load_fixtures(hematologist)
    header = "mrn,date,event,detail\n"
    # After A001's last recorded event (preemptive therapy on 2025-06-01): a death precedes nothing.
    assert load("events", header + "A001,2025-06-19,death,crs\n").ok
    report = load("events", header + "A001,2025-06-25,death,other\n")
    assert not report.ok
    assert "already recorded" in report.errors[0].reason
    twice = load("events", header + "A002,2025-04-19,death,crs\nA002,2025-04-20,death,other\n")
    assert [e.line for e in twice.errors] == [3]
    assert ClinicalEvent.objects.filter(kind="death").count() == 1


def test_rows_dated_after_today_are_refused():
    from datetime import timedelta

    from django.utils import timezone

    load("patients", fixture("patients.csv"))
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    report = load("observations", OBS_HEADER + f"A001,{tomorrow},37,none,none,0,0,0\n")
    assert [(e.line, e.column) for e in report.errors] == [(2, "date")]
    assert "has not come yet" in report.errors[0].reason
