"""CSV exports of SPEC 8.2: the four input files plus assessments and summary.

The input files use exactly the columns the imports read, so exporting a
cohort and importing ``patients.csv``, ``labs.csv``, ``observations.csv`` and
``events.csv`` into an empty database reproduces the same data. Each file
takes one query; every export is written to the audit trail and to the access
log, one line per exported patient.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from django.db import connection, transaction
from django.db.models import QuerySet

from crsrisk.accounts.models import AccessLog
from patients.imports import (
    COLUMNS,
    EVENTS,
    LABS,
    OBSERVATIONS,
    PATIENTS,
    quote_text_cell,
    record_transfer,
)
from patients.models import ClinicalEvent, LabResult, Observation, Patient, TransferDirection
from scoring.models import DailyAssessment, PatientSummary, ScoreModel
from scoring.rules import units
from scoring.services import site_zone

ASSESSMENTS, SUMMARY = "assessments", "summary"
EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    **COLUMNS,
    ASSESSMENTS: (
        "mrn",
        "day",
        "date",
        "model",
        "points",
        "max_points",
        "band",
        "band_final",
        "provisional",
        "crs_grade",
        "bcell_status",
        "m_easix",
    ),
    SUMMARY: (
        "mrn",
        "day7_points",
        "day7_max_points",
        "day7_band",
        "day7_complete",
        "max_crs_grade",
        "severe_crs",
        "bcell_status",
        "first_regeneration_day",
        "m_easix_pre_ld",
    ),
}
FILE_ORDER = (PATIENTS, LABS, OBSERVATIONS, EVENTS, ASSESSMENTS, SUMMARY)
EXPORT_ACCESS_PAGE = "export_cohort"


def cell(value: Any) -> str:
    """One CSV cell: empty for missing, 0/1 for booleans, at most 6 dp without exponent.

    Text that a spreadsheet would run as a formula gets a leading ' (``quote_text_cell``).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return units.format_decimal(units.quantize_canonical(value))
    if isinstance(value, datetime):
        return value.astimezone(site_zone()).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return quote_text_cell(value)
    return str(value)


Rows = Iterator[list[Any]]


def _mrd_cell(value: Decimal | None, comparator: str) -> str:
    """An MRD in full (all its 10 stored places, trailing zeros dropped), with "<" below detection."""
    return "" if value is None else comparator + units.format_decimal(Decimal(value))


def _patient_rows(patients: QuerySet[Patient]) -> Rows:
    for p in patients.select_related("infusion", "care_team").order_by("mrn"):
        inf = p.infusion
        yield [
            p.mrn,
            p.name,
            p.sex,
            p.birth_date,
            p.care_team.name,
            p.diagnosis,
            inf.product,
            inf.infusion_date,
            _mrd_cell(inf.baseline_mrd_pct, inf.baseline_mrd_comparator),
            _mrd_cell(inf.post_ld_mrd_pct, inf.post_ld_mrd_comparator),
            inf.lymphodepletion_start,
        ]


def _lab_rows(patients: QuerySet[Patient]) -> Rows:
    labs = (
        LabResult.objects.active()
        .filter(patient__in=patients)
        .order_by("patient__mrn", "collected_at", "analyte")
        .values_list("patient__mrn", "collected_at", "analyte", "comparator", "value", "note")
    )
    for mrn, collected_at, analyte, comparator, value, note in labs:
        yield [
            mrn,
            collected_at,
            analyte,
            f"{comparator}{cell(Decimal(value))}",
            units.ANALYTES[analyte].canonical_unit,
            note,
        ]


def _observation_rows(patients: QuerySet[Patient]) -> Rows:
    rows = (
        Observation.objects.active()
        .filter(patient__in=patients)
        .order_by("patient__mrn", "date")
        .values_list("patient__mrn", "date", *COLUMNS[OBSERVATIONS][2:])
    )
    for row in rows:
        yield list(row)


def _event_rows(patients: QuerySet[Patient]) -> Rows:
    rows = (
        ClinicalEvent.objects.active()
        .filter(patient__in=patients)
        .order_by("patient__mrn", "date", "kind", "detail")
        .values_list("patient__mrn", "date", "kind", "detail")
    )
    for row in rows:
        yield list(row)


def _assessment_rows(patients: QuerySet[Patient], model: ScoreModel) -> Rows:
    rows = (
        DailyAssessment.objects.filter(patient__in=patients, model=model)
        .order_by("patient__mrn", "day")
        .values_list(
            "patient__mrn",
            "day",
            "date",
            "points",
            "max_points",
            "band",
            "band_final",
            "provisional",
            "crs_grade",
            "bcell_status",
            "m_easix",
        )
    )
    for mrn, day, d, points, max_points, band, final, provisional, grade, bstatus, measix in rows:
        yield [mrn, day, d, model.name, points, max_points, band, final, provisional, grade, bstatus, measix]


def _summary_rows(patients: QuerySet[Patient], model: ScoreModel) -> Rows:
    rows = (
        PatientSummary.objects.filter(patient__in=patients, model=model)
        .order_by("patient__mrn")
        .values_list(*(("patient__mrn",) + EXPORT_COLUMNS[SUMMARY][1:]))
    )
    for row in rows:
        yield list(row)


def write_csv(stream: TextIO, kind: str, rows: Iterable[list[Any]]) -> int:
    """Write one file of SPEC 8.2 (header and rows) to ``stream``; return the row count."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS[kind])
    count = 0
    for row in rows:
        writer.writerow([cell(v) for v in row])
        count += 1
    return count


def export_rows(kind: str, patients: QuerySet[Patient], model: ScoreModel | None = None) -> Rows:
    """The rows of one export file for these patients (derived files: the active model)."""
    simple: dict[str, Callable[[QuerySet[Patient]], Rows]] = {
        PATIENTS: _patient_rows,
        LABS: _lab_rows,
        OBSERVATIONS: _observation_rows,
        EVENTS: _event_rows,
    }
    if kind in simple:
        return simple[kind](patients)
    model = model or ScoreModel.objects.active()
    if kind == ASSESSMENTS:
        return _assessment_rows(patients, model)
    if kind == SUMMARY:
        return _summary_rows(patients, model)
    raise ValueError(f"unknown export file {kind!r}; accepted: {', '.join(FILE_ORDER)}")


@dataclass
class ExportReport:
    directory: Path
    patients: int = 0
    rows: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"{self.directory / (k + '.csv')}: {n} row(s)" for k, n in self.rows.items()]
        out.append(f"exported {self.patients} patient(s) to {self.directory}.")
        return out


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Read the six files from one snapshot, so a concurrent import cannot split them.

    SQLite transactions read one snapshot already; PostgreSQL needs REPEATABLE READ, which
    must be set before the transaction's first query (so not inside an outer transaction).
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _write_files(
    patients: QuerySet[Patient],
    open_file: Callable[[str], AbstractContextManager[TextIO]],
    report: ExportReport,
    progress: Callable[[str], None] | None,
) -> list[str]:
    """Write the six files through ``open_file``; return the exported MRNs."""
    model = ScoreModel.objects.active()
    mrns = list(patients.order_by("mrn").values_list("mrn", flat=True))
    report.patients = len(mrns)
    for kind in FILE_ORDER:
        with open_file(kind) as fh:
            report.rows[kind] = write_csv(fh, kind, export_rows(kind, patients, model))
        if progress is not None:
            progress(f"wrote {kind}.csv: {report.rows[kind]} row(s)")
    return mrns


def _audit_export(
    *,
    user: Any,
    mrns: list[str],
    report: ExportReport,
    page: str,
    ip_address: str | None,
) -> None:
    """Every export of patient records: one access-log line per patient, one DataTransfer (SPEC 7)."""
    actor = user if getattr(user, "is_authenticated", False) else None
    AccessLog.objects.bulk_create(
        AccessLog(
            user=actor,
            username=getattr(actor, "username", "") or "",
            mrn=mrn,
            page=page,
            ip_address=ip_address,
        )
        for mrn in mrns
    )
    record_transfer(
        user=user,
        direction=TransferDirection.EXPORT,
        kind="cohort",
        filename=str(report.directory),
        created=sum(report.rows.values()),
        patients=report.patients,
        detail="\n".join(report.lines()),
    )


def export_cohort(
    *,
    directory: str | Path,
    user: Any = None,
    patients: QuerySet[Patient] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Write the six CSV files of SPEC 8.2 into ``directory``; audit and log the export."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    patients = Patient.objects.all() if patients is None else patients
    report = ExportReport(directory=target)

    def open_file(kind: str) -> AbstractContextManager[TextIO]:
        return open(target / f"{kind}.csv", "w", encoding="utf-8", newline="")

    with _one_snapshot():
        mrns = _write_files(patients, open_file, report, progress)
    _audit_export(user=user, mrns=mrns, report=report, page=EXPORT_ACCESS_PAGE, ip_address=None)
    return report


def export_zip(
    *,
    filename: str,
    user: Any,
    patients: QuerySet[Patient],
    page: str = EXPORT_ACCESS_PAGE,
    ip_address: str | None = None,
) -> tuple[bytes, ExportReport]:
    """The six files of :func:`export_cohort`, byte for byte, as members of one zip; audited."""
    report = ExportReport(directory=Path(filename))
    buffer = io.BytesIO()
    with _one_snapshot(), zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        @contextmanager
        def open_file(kind: str) -> Iterator[TextIO]:
            # The same text the command writes (UTF-8, "\n" line ends), encoded the same way.
            text = io.StringIO(newline="")
            yield text
            archive.writestr(f"{kind}.csv", text.getvalue().encode("utf-8"))

        mrns = _write_files(patients, open_file, report, None)
    _audit_export(user=user, mrns=mrns, report=report, page=page, ip_address=ip_address)
    return buffer.getvalue(), report
