"""export_cohort (SPEC 8.2): exact columns, number format, voids left out, round trip."""

from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crsrisk.accounts.models import AccessLog
from patients import imports, services
from patients.exports import EXPORT_COLUMNS, FILE_ORDER, cell, export_cohort
from patients.models import DataTransfer, LabResult, Patient
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INPUTS = ("patients", "labs", "observations", "events")


def load_fixtures() -> None:
    for kind in INPUTS:
        report = imports.run_import(kind, (FIXTURES / f"{kind}.csv").read_bytes(), filename=f"{kind}.csv")
        assert report.ok, report.lines()


def read(directory: Path, kind: str) -> list[dict[str, str]]:
    with open(directory / f"{kind}.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("250.000000"), "250"),
        (Decimal("0.1234567"), "0.123457"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.000000"), "0"),
        (None, ""),
        (True, "1"),
        (False, "0"),
    ],
)
@pytest.mark.nodb
def test_cell_format(value, text):
    assert cell(value) == text


def test_export_writes_six_files_with_exact_columns(tmp_path, hematologist):
    load_fixtures()
    report = export_cohort(directory=tmp_path, user=hematologist)
    for kind in FILE_ORDER:
        header = (tmp_path / f"{kind}.csv").read_text(encoding="utf-8").splitlines()[0]
        assert header == ",".join(EXPORT_COLUMNS[kind])
    assert report.rows["patients"] == 2
    patients = {r["mrn"]: r for r in read(tmp_path, "patients")}
    assert patients["A002"]["name"] == "<script>alert(1)</script>"
    assert patients["A001"]["baseline_mrd_pct"] == "12"
    assert patients["A002"]["lymphodepletion_start"] == ""
    labs = read(tmp_path, "labs")
    crp = next(r for r in labs if r["analyte"] == "crp" and r["mrn"] == "A001")
    assert (crp["value"], crp["unit"], crp["collected_at"]) == ("250", "mg/L", "2025-03-08T06:30:00+00:00")
    bcell = next(r for r in labs if r["analyte"] == "bcell")
    assert (bcell["value"], bcell["unit"]) == ("<1", "cells/µL")
    summary = {r["mrn"]: r for r in read(tmp_path, "summary")}
    a1 = summary["A001"]
    assert (a1["day7_points"], a1["day7_band"], a1["day7_complete"], a1["severe_crs"]) == (
        "4",
        "high",
        "1",
        "1",
    )
    assessments = [r for r in read(tmp_path, "assessments") if r["mrn"] == "A001"]
    assert [int(r["day"]) for r in assessments] == list(range(0, 8))  # last lab on day 7; events are not data
    assert {r["model"] for r in assessments} == {"provisional-v0"}
    assert assessments[2]["crs_grade"] == "3" and assessments[5]["crs_grade"] == ""
    assert AccessLog.objects.filter(page="export_cohort", username="hema").count() == 2
    audit = DataTransfer.objects.get(direction="export")
    assert (audit.kind, audit.patients, audit.user) == ("cohort", 2, hematologist)


def test_voided_labs_are_left_out(tmp_path, hematologist):
    load_fixtures()
    crp = LabResult.objects.get(patient__mrn="A001", analyte="crp")
    services.lab_void(user=hematologist, lab=crp, expected_version=crp.version, reason="wrong tube")
    export_cohort(directory=tmp_path)
    assert not any(r["analyte"] == "crp" and r["mrn"] == "A001" for r in read(tmp_path, "labs"))


def test_export_query_count_is_constant(tmp_path):
    load_fixtures()
    with CaptureQueriesContext(connection) as one:
        export_cohort(directory=tmp_path / "a")
    services_user = None
    for i in range(5):
        services.patient_register(
            user=services_user, mrn=f"X{i}", name="x", infusion_date=datetime(2025, 1, 1).date()
        )
        services.lab_record(
            user=None,
            patient=Patient.objects.get(mrn=f"X{i}"),
            analyte="crp",
            value="5",
            collected_at=datetime(2025, 1, 2, 8, tzinfo=ZoneInfo("UTC")),
        )
    with CaptureQueriesContext(connection) as more:
        export_cohort(directory=tmp_path / "b")
    assert len(more.captured_queries) == len(one.captured_queries)


def test_round_trip_reproduces_the_same_data(tmp_path):
    load_fixtures()
    # A value given in another unit, a LOINC and a site-time sample all come back canonical.
    extra = 'mrn,collected_at,analyte,value,unit,note\nA002,2025-03-13,14723-1,2247,pmol/L,"a, quoted note"\n'
    assert imports.run_import("labs", extra, filename="extra.csv").ok
    first = tmp_path / "first"
    export_cohort(directory=first)
    # Empty the clinical data, then import the four input files of the export.
    from patients.models import ClinicalEvent, Infusion, Observation
    from scoring.models import Alert, DailyAssessment, PatientSummary

    for model in (
        Alert,
        DailyAssessment,
        PatientSummary,
        LabResult,
        Observation,
        ClinicalEvent,
        Infusion,
        Patient,
    ):
        model.objects.all().delete()
    for kind in INPUTS:
        report = imports.run_import(kind, (first / f"{kind}.csv").read_bytes(), filename=f"{kind}.csv")
        assert report.ok, report.lines()
    second = tmp_path / "second"
    export_cohort(directory=second)
    for kind in FILE_ORDER:
        assert (first / f"{kind}.csv").read_bytes() == (second / f"{kind}.csv").read_bytes(), kind
    for patient in Patient.objects.all():
        assert_stored_equals_scratch(patient)


@pytest.mark.django_db(transaction=True)
def test_export_outside_a_transaction_reads_one_snapshot_and_is_audited_after(tmp_path, hematologist):
    # Outside any transaction, as the command and the web export run: on PostgreSQL the
    # export opens a REPEATABLE READ transaction of its own, which must be its first statement.
    load_fixtures()
    assert not connection.in_atomic_block
    with CaptureQueriesContext(connection) as ctx:
        report = export_cohort(directory=tmp_path, user=hematologist)
    statements = [q["sql"] for q in ctx.captured_queries]
    if connection.vendor == "postgresql":
        # Django logs the BEGIN it issues; the isolation level must come right after it.
        assert statements[:2] == ["BEGIN", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"]
    assert report.rows["patients"] == 2
    assert {r["mrn"] for r in read(tmp_path, "patients")} == {"A001", "A002"}
    assert DataTransfer.objects.filter(direction="export", patients=2).exists()
