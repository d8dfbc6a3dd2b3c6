"""Streamed, set-based import of labs.csv (issue 10, item 3).

The rows are read one at a time and each is parsed by the same validator as the
entry form (``services.validate_lab``); the good ones go to a temporary staging
table (``COPY`` on PostgreSQL, chunked ``executemany`` on SQLite). Duplicates in
the file, conflicts with stored values, voided values and the tenfold-jump flag
are then found with joins on that table, and the rows and their history rows go
in with ``INSERT … SELECT``. Nothing the size of the file is held in memory: only
the file's patients, the first problems of the report, and one chunk of rows.

The messages, the dry run, the skip of identical rows and corrections with a
reason are those of the in-memory planner it replaced. The staging, the chunked
reads and the bounded report serve observations.csv too (``bulk_observations``).
"""

# The SQL below is built only from constant table and column names; values are parameters.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils.translation import gettext as _

from crsrisk import store
from patients import imports as im
from patients import services
from patients.csvread import NotText
from patients.models import LabResult, Patient
from scoring.rules import units
from scoring.rules.days import MAX_DAY, MIN_DAY, day_of
from scoring.services import site_zone

STAGE = "import_lab_stage"
CHUNK = 5000
CHECKS_KEPT = 10_000  # the checked (analyte, value, unit) answers kept while a file is read
NOTES_SHOWN = 1000  # the first notes of a big file in full, then their count

_STAGE_COLUMNS = (
    "line",
    "patient_id",
    "analyte",
    "collected_at",
    "value",
    "comparator",
    "entered_value",
    "entered_unit",
    "loinc",
    "note",
    "flags",
    "warnings",
    "unit_note",
    "raw_value",
    "when_text",
)
_SEP = "\x1f"  # between the warning texts of one row


ERRORS_SHOWN = 1000  # the first problems of a refused file in full, then counts per column


class _Problems(list[im.RowError]):
    """The problems of one pass over the file, in line order: the first ones kept, the rest counted."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, int] = {}
        self.hidden_lines = 0
        self.last_line = -1

    def append(self, error: im.RowError) -> None:
        if len(self) < ERRORS_SHOWN:
            super().append(error)
        else:
            self.hidden[error.column] = self.hidden.get(error.column, 0) + 1
            if error.line != self.last_line:
                self.hidden_lines += 1
        self.last_line = error.line


def _report_problems(report: im.ImportReport, *passes: _Problems) -> None:
    """The first problems of every pass, by line, into the report; the rest as counts.

    The passes are about different rows (a row refused by one is not looked at by the
    next), so their line counts add up.
    """
    kept = sorted((e for p in passes for e in p), key=lambda e: e.line)
    room = max(ERRORS_SHOWN - len(report.errors), 0)
    shown, cut = kept[:room], kept[room:]
    report.errors.extend(shown)
    shown_lines = {e.line for e in shown}
    report.hidden_lines += len({e.line for e in cut} - shown_lines)
    for error in cut:
        report.hidden_errors[error.column] = report.hidden_errors.get(error.column, 0) + 1
    for p in passes:
        report.hidden_lines += p.hidden_lines
        for column, count in p.hidden.items():
            report.hidden_errors[column] = report.hidden_errors.get(column, 0) + count


def _report_read_errors(report: im.ImportReport, read_errors: _Problems) -> None:
    """A file that cannot be read is refused as that alone, as when it was read whole first.

    Its rows' MRNs were not looked at then, so none is a refused access; a file that is
    not text has no rows.
    """
    report.unknown_mrns.clear()
    if any(isinstance(e, NotText) for e in read_errors):
        report.rows = 0
    _report_problems(report, read_errors)


def _lab_table() -> str:
    return LabResult._meta.db_table


def _create_stage(cursor: Any) -> None:
    pg = connection.vendor == "postgresql"
    cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
    cursor.execute(
        f"CREATE TEMP TABLE {STAGE} ("
        "line integer PRIMARY KEY, patient_id bigint NOT NULL, analyte varchar(16) NOT NULL, "
        f"collected_at {'timestamptz' if pg else 'datetime'} NOT NULL, "
        f"value {'numeric(18, 6)' if pg else 'decimal'} NOT NULL, comparator varchar(2) NOT NULL, "
        "entered_value text NOT NULL, entered_unit text NOT NULL, loinc text NOT NULL, note text NOT NULL, "
        "flags text NOT NULL, warnings text NOT NULL, unit_note text NOT NULL, raw_value text NOT NULL, "
        "when_text text NOT NULL, lab_id bigint NULL, flags0 text NULL, warnings0 text NULL)"
    )
    cursor.execute(f"CREATE INDEX {STAGE}_key ON {STAGE} (patient_id, analyte, collected_at)")


def _flush(
    cursor: Any, chunk: list[tuple[Any, ...]], stage: str = STAGE, columns: Sequence[str] = _STAGE_COLUMNS
) -> None:
    """One chunk of staged rows into a staging table: ``COPY`` on PostgreSQL, ``executemany`` on SQLite."""
    if not chunk:
        return
    if connection.vendor == "postgresql":
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in chunk:
                copy.write_row(row)
    else:
        marks = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {stage} ({', '.join(columns)}) VALUES ({marks})", chunk)
    chunk.clear()


def _batches(sql: str, params: Sequence[Any] = ()) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of a query, a chunk at a time, never all of them at once.

    On PostgreSQL through a server-side cursor (psycopg fetches a plain cursor's whole
    result into memory); SQLite's cursor already steps through the result.
    """
    if connection.vendor == "postgresql":
        with connection.connection.cursor(name=f"{STAGE}_read") as cursor:  # inside the import's transaction
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(CHUNK):
                yield batch
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(CHUNK):
            yield batch


def _check_lab(
    analyte: str, value: str, unit: str, usual: dict[str, str], ops: Any
) -> list[tuple[str, str]] | tuple[Any, ...]:
    """One value checked as the entry form does: its staged cells, or its problems (column, reason).

    The same analyte, value and unit always give the same answer, so a file's repeats
    are checked once (``plan_labs`` keeps the answers, a bounded number).
    """
    try:
        lab = services.validate_lab(
            analyte=analyte,
            value_text=value,
            unit=unit,
            usual_units=usual,
            allow_exponent=True,  # lab systems and analysis tools write 1.107e+04 (issue 12)
        )
    except ValidationError as exc:
        return [
            (im._lab_field_to_column(field_key), message)
            for field_key, messages in exc.message_dict.items()
            for message in messages
        ]
    problems = []
    if len(lab.entered_value) > im.ENTERED_VALUE_MAX_LENGTH:
        problems.append(
            ("value", _("at most %(max)d characters are accepted") % {"max": im.ENTERED_VALUE_MAX_LENGTH})
        )
    if len(lab.entered_unit) > im.ENTERED_UNIT_MAX_LENGTH:
        problems.append(
            ("unit", _("at most %(max)d characters are accepted") % {"max": im.ENTERED_UNIT_MAX_LENGTH})
        )
    if problems:
        return problems
    return (
        lab.analyte,
        ops.adapt_decimalfield_value(lab.value, 18, 6),
        lab.comparator,
        lab.entered_value,
        lab.entered_unit,
        lab.loinc,
        json.dumps(lab.warnings),
        _SEP.join(lab.warning_texts),
        # Said, never asked: a value rounded to the stored decimals, another unit.
        _SEP.join(t for t in (lab.rounding_note_text, lab.unit_note_text) if t),
    )


# A collection time checked for one patient: the time (None when refused), its database
# value and ISO text, and the problems of the collected_at cell.
_Timed = tuple[datetime | None, Any, str, list[str]]


def _check_time(text: str, patient: Patient | None, tz: Any, death: Any, ops: Any) -> _Timed:
    """A collection time parsed and checked against the patient, as the entry form checks it."""
    when = im.parse_collected_at(text)
    if isinstance(when, str):
        return None, None, "", [when]
    problems: list[str] = []
    if patient is not None:
        day = day_of(when, tz, patient.infusion.infusion_date)
        if not MIN_DAY <= day <= MAX_DAY:
            problems.append(im._day_error(day, _("this sample")))
        else:
            try:
                services.check_not_future_time(when, "collected_at")
            except ValidationError as exc:
                problems.extend(exc.message_dict.get("collected_at", exc.messages))
            local = when.astimezone(tz).date()
            if death is not None and local > death[0]:
                problems.append(services.after_death_text(*death, local))
    return when, ops.adapt_datetimefield_value(when), when.isoformat(), problems


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def plan_labs(text: im.CsvSource, report: im.ImportReport, ctx: im._Context) -> im.Plan | None:
    """Read labs.csv streamed into a staging table and check it; its plan, or None when refused.

    What the file says alone is checked here; the checks against the stored rows are the
    plan's ``check`` (``run_import`` runs it under the write's lock, after ``recheck``).
    """
    fn = report.filename
    # First pass: the file's MRNs only, to load its patients once (locked by ``recheck``).
    mrns: set[str] = set()
    # A file that cannot be read is reported by the second pass.
    mrns.update(im.column_cells(text, kind=im.LABS, column="mrn"))
    patients = im._patients_by_mrn(mrns, lock=False, scope=ctx.scope)
    del mrns
    tz = site_zone()
    deaths = im._death_dates(patients)
    usual = services.usual_units()
    ops = connection.ops
    read_errors = _Problems()  # the file itself: a file that cannot be read is only that
    row_errors = _Problems()
    rows, _header = im.iter_rows(text, kind=im.LABS, filename=fn, errors=read_errors)
    chunk: list[tuple[Any, ...]] = []
    checks: dict[tuple[str, str, str], list[tuple[str, str]] | tuple[Any, ...]] = {}
    times: dict[tuple[str, int | None], _Timed] = {}
    with connection.cursor() as cursor:
        _create_stage(cursor)
        for row in rows:
            report.rows += 1
            c = im._Cells(row, fn, row_errors)
            patient = im._unknown_mrn(c, patients, report)
            cells = row.cells  # read directly: ``c.raw`` is a call per cell
            # A panel's rows share their time: each (time, patient) is checked once.
            time_key = (cells.get("collected_at", ""), None if patient is None else patient.pk)
            timed = times.get(time_key)
            if timed is None:
                timed = _check_time(
                    time_key[0], patient, tz, deaths.get(patient.pk) if patient else None, ops
                )
                if len(times) >= CHECKS_KEPT:
                    times.clear()  # bounded whatever the file
                times[time_key] = timed
            when, when_db, when_text, time_problems = timed
            for message in time_problems:
                c.error("collected_at", message)
            key = (cells.get("analyte", ""), cells.get("value", ""), cells.get("unit", ""))
            checked = checks.get(key)
            if checked is None:
                checked = _check_lab(*key, usual, ops)
                if len(checks) >= CHECKS_KEPT:
                    checks.clear()  # bounded whatever the file
                checks[key] = checked
            if isinstance(checked, list):
                for col, message in checked:
                    c.error(col, message)
                continue
            if c.bad or patient is None or when is None:
                continue
            analyte, value, comparator, entered_value, entered_unit, loinc, flags, warnings, notes = checked
            chunk.append(
                (
                    row.line,
                    patient.pk,
                    analyte,
                    when_db,
                    value,
                    comparator,
                    entered_value,
                    entered_unit,
                    loinc,
                    cells.get("note", ""),
                    flags,
                    warnings,
                    notes,
                    key[1],
                    when_text,
                )
            )
            if len(chunk) >= CHUNK:
                _flush(cursor, chunk)
        _flush(cursor, chunk)
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {STAGE}")  # a temporary table has no statistics otherwise
        if read_errors:
            _report_read_errors(report, read_errors)
            return None
        duplicates = _Problems()
        _duplicates(cursor, report, duplicates, patients)
        # Row errors in line order, then the conflicts (``check``), as the in-memory planner.
        _report_problems(report, row_errors, duplicates)

    notes: list[int] = []  # where this check's notes begin and end in the report

    def check_rows(only: list[int] | None) -> None:
        with connection.cursor() as cursor:
            if notes:  # checked before: its notes are written again below
                del report.notes[notes[0] : notes[1]]
            conflicts = _Problems()
            _classify(cursor, report, ctx, patients, conflicts, only)
            if conflicts:
                _report_problems(report, conflicts)
            if report.errors:
                return
            _flag_tenfold_jumps(cursor, only)
            notes[:] = [len(report.notes)]
            _notes(cursor, report)
            notes.append(len(report.notes))

    checks = Rechecks(
        LabResult, patients, check_rows, lambda: im.patients_recheck(patients, deaths, report, ctx)
    )
    return im.Plan(
        write=lambda: _write(ctx),
        check=checks.check,
        recheck=checks.recheck,
        discard=lambda: drop_stage(STAGE),
    )


class Rechecks:
    """The checks of a staged file against the stored rows, run before the write's lock and again under it.

    ``check`` runs them on every staged row (``check_rows(None)``), after noting the newest
    history row of ``model``. Under the write's lock, ``recheck`` reads the file's patients
    again (``patients_recheck``), then runs the checks again on the rows of the patients whose
    stored rows of ``model`` changed since (``check_rows`` with their ids): a value entered,
    corrected or voided meanwhile. SQLite writes one transaction at a time, so the history rows
    committed after the check are exactly those with a higher ``history_id``, and the lock is
    held only as long as those patients take. PostgreSQL hands out keys before the commit, so
    there a key cannot tell: ``_import_in_two_phases`` calls ``check`` before the lock only on
    SQLite, and ``recheck`` without a ``check`` before it runs the checks once, on every row,
    under the file's patients' row locks (other patients' writers never wait for it).
    """

    def __init__(
        self,
        model: Any,
        patients: dict[str, Patient],
        check_rows: Callable[[list[int] | None], None],
        patients_recheck: Callable[[], bool],
    ) -> None:
        self.model = model
        self.patients = patients
        self.check_rows = check_rows
        self.patients_recheck = patients_recheck
        self.mark: int | None = None  # the newest history row when the rows were checked

    def check(self) -> None:
        self.mark = history_mark(self.model)  # read before the rows, in the check's snapshot
        self.check_rows(None)

    def recheck(self) -> None:
        if not self.patients_recheck():
            return  # refused: a patient changed
        if self.mark is None:  # not checked before the lock
            self.check_rows(None)
        elif changed := changed_patients(self.model, self.mark, {p.pk for p in self.patients.values()}):
            self.check_rows(changed)


def history_mark(model: Any) -> int:
    """The key of ``model``'s newest django-simple-history row (0 when none)."""
    table = model.history.model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(history_id), 0) FROM {table}")
        return int(cursor.fetchone()[0])


def changed_patients(model: Any, mark: int, among: set[int]) -> list[int]:
    """The patients of ``among`` with a row of ``model`` created, corrected or voided after ``mark``."""
    table = model.history.model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT patient_id FROM {table} WHERE history_id > %s", [mark])
        return sorted(pid for (pid,) in cursor.fetchall() if pid in among)


def only_patients(only: list[int] | None, column: str = "patient_id") -> str:
    """``AND <column> IN (…)`` for a re-check of some patients, or nothing for all of them."""
    if only is None:
        return ""
    return f" AND {column} IN ({', '.join(str(int(pid)) for pid in only)})"


def drop_stage(stage: str) -> None:
    """Drop a staging table (it outlives the check's transaction: the write reads it)."""
    if connection.connection is None or connection.needs_rollback:
        return  # gone with the connection, or with the transaction it was made in
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {stage}")


def _mrn_of(patients: dict[str, Patient]) -> dict[int, str]:
    return {p.pk: mrn for mrn, p in patients.items()}


def _duplicates(
    cursor: Any, report: im.ImportReport, errors: list[im.RowError], patients: dict[str, Patient]
) -> None:
    """A key twice in the file: skipped when the same value, refused otherwise."""
    mrn_of = _mrn_of(patients)
    found = 0
    for batch in _batches(
        # A window over the key, not a correlated MIN(line) per row.
        f"SELECT line, raw_value, analyte, patient_id, when_text, first_line, "
        f"CASE WHEN value = first_val AND comparator = first_cmp THEN 1 ELSE 0 END FROM ("
        f"SELECT line, raw_value, analyte, patient_id, when_text, value, comparator, "
        f"FIRST_VALUE(line) OVER w AS first_line, FIRST_VALUE(value) OVER w AS first_val, "
        f"FIRST_VALUE(comparator) OVER w AS first_cmp FROM {STAGE} "
        f"WINDOW w AS (PARTITION BY patient_id, analyte, collected_at ORDER BY line)) d "
        f"WHERE line <> first_line ORDER BY line"
    ):
        for line, raw_value, analyte, patient_id, when_text, first_line, same in batch:
            found += 1
            if same:
                report.skipped += 1
                continue
            errors.append(
                im.RowError(
                    report.filename,
                    line,
                    "value",
                    raw_value,
                    _(
                        "%(analyte)s of %(mrn)s at %(when)s appears again with another value "
                        "(first on line %(line)d)"
                    )
                    % {"analyte": analyte, "mrn": mrn_of[patient_id], "when": when_text, "line": first_line},
                )
            )
    if found:
        cursor.execute(
            f"DELETE FROM {STAGE} WHERE line IN (SELECT line FROM (SELECT line, ROW_NUMBER() OVER ("
            f"PARTITION BY patient_id, analyte, collected_at ORDER BY line) AS n FROM {STAGE}) d WHERE n > 1)"
        )


def skip_voided(
    cursor: Any,
    report: im.ImportReport,
    *,
    stage: str,
    table: str,
    voided: str,
    stored_key: str,
    only: list[int] | None = None,
) -> None:
    """Skip the staged rows that repeat a voided row, with a note each: a re-import never undoes a void.

    ``voided`` selects the id of the latest voided row that a staged row ``s`` repeats (or NULL); only
    the staged rows with nothing live at their key (``stored_key`` NULL) are looked at.
    """
    fn = report.filename
    shown = 0
    for batch in _batches(
        f"SELECT s.line, v.voided_at, v.void_reason FROM {stage} s JOIN {table} v ON v.id = ({voided}) "
        f"WHERE s.{stored_key} IS NULL{only_patients(only, 's.patient_id')} ORDER BY s.line"
    ):
        for line, voided_at, void_reason in batch:
            shown += 1
            if shown > NOTES_SHOWN:
                continue  # counted below
            when = voided_at if isinstance(voided_at, datetime) else datetime.fromisoformat(str(voided_at))
            report.notes.append(
                _(
                    "%(file)s, line %(line)d: skipped, this value was voided on %(date)s (%(reason)s); "
                    "enter it again to restore it."
                )
                % {"file": fn, "line": line, "date": f"{when:%Y-%m-%d}", "reason": void_reason}
            )
    if shown > NOTES_SHOWN:
        report.notes.append(
            _("%(file)s: %(count)d more note(s) on stored values are not shown.")
            % {"file": fn, "count": shown - NOTES_SHOWN}
        )
    if shown:
        cursor.execute(
            f"DELETE FROM {stage} WHERE {stored_key} IS NULL{only_patients(only)} AND EXISTS ("
            f"SELECT 1 FROM {stage} s WHERE s.line = {stage}.line AND ({voided}) IS NOT NULL)"
        )
        report.skipped += cursor.rowcount


def _classify(
    cursor: Any,
    report: im.ImportReport,
    ctx: im._Context,
    patients: dict[str, Patient],
    conflicts: _Problems,
    only: list[int] | None = None,
) -> None:
    """Join the staged rows to the stored ones: skip, conflict, correction or creation.

    ``only``: the rows of these patients (a re-check under the lock, ``Rechecks``); None: all.
    """
    lab = _lab_table()
    fn = report.filename
    these = only_patients(only)
    cursor.execute(
        f"UPDATE {STAGE} SET lab_id = (SELECT l.id FROM {lab} l WHERE l.patient_id = {STAGE}.patient_id "
        f"AND l.analyte = {STAGE}.analyte AND l.collected_at = {STAGE}.collected_at AND l.voided_at IS NULL)"
        f" WHERE 1 = 1{these}"
    )
    # The same value stored already: skipped (re-importing a file changes nothing).
    cursor.execute(
        f"DELETE FROM {STAGE} WHERE lab_id IS NOT NULL AND EXISTS (SELECT 1 FROM {lab} l "
        f"WHERE l.id = {STAGE}.lab_id AND l.value = {STAGE}.value "
        f"AND l.comparator = {STAGE}.comparator){these}"
    )
    report.skipped += cursor.rowcount
    # Re-importing a file must not bring back a value someone voided (SPEC 8.2).
    voided = (
        f"SELECT MAX(v.id) FROM {lab} v WHERE v.patient_id = s.patient_id AND v.analyte = s.analyte "
        f"AND v.collected_at = s.collected_at AND v.value = s.value AND v.comparator = s.comparator "
        f"AND v.voided_at IS NOT NULL"
    )
    skip_voided(cursor, report, stage=STAGE, table=lab, voided=voided, stored_key="lab_id", only=only)
    cursor.execute(f"SELECT COUNT(*), COUNT(lab_id) FROM {STAGE}")
    total, stored = cursor.fetchone()
    report.created, report.updated = total - stored, stored
    if stored and not ctx.correct:
        report.updated = 0
        mrn_of = _mrn_of(patients)
        for batch in _batches(
            f"SELECT s.line, s.entered_value, s.analyte, s.patient_id, s.when_text, l.value, l.comparator "
            f"FROM {STAGE} s JOIN {lab} l ON l.id = s.lab_id "
            f"WHERE 1 = 1{only_patients(only, 's.patient_id')} ORDER BY s.line"
        ):
            for line, entered_value, analyte, patient_id, when_text, value, comparator in batch:
                shown = f"{comparator}{units.format_decimal(_decimal(value))}"
                conflicts.append(
                    im.RowError(
                        fn,
                        line,
                        "value",
                        entered_value,
                        _(
                            "conflict: %(analyte)s of %(mrn)s at %(when)s is stored as %(stored)s %(unit)s; "
                            "to change it, %(how)s"
                        )
                        % {
                            "analyte": analyte,
                            "mrn": mrn_of[patient_id],
                            "when": when_text,
                            "stored": shown,
                            "unit": units.ANALYTES[analyte].canonical_unit,
                            "how": ctx.correct_hint,
                        },
                    )
                )


def _flag_tenfold_jumps(cursor: Any, only: list[int] | None = None) -> None:
    """The ×10 jump warning of SPEC 2.2, against the previous value in time (stored or staged).

    ``only``: the rows of these patients, flagged again (a re-check under the lock): the
    flags a jump replaced (``flags0``) come back first.
    """
    lab = _lab_table()
    if only is not None:
        cursor.execute(
            f"UPDATE {STAGE} SET flags = flags0, warnings = warnings0, flags0 = NULL, warnings0 = NULL "
            f"WHERE flags0 IS NOT NULL{only_patients(only)}"
        )
    # Only the candidates come back: a jump is tested here in SQL, loosely (SQLite's
    # decimals are floating point), and exactly by the rules below.
    ratio = units.TENFOLD_JUMP_RATIO * Decimal("0.999")
    jumps: list[tuple[int, Decimal]] = []
    for batch in _batches(
        f"SELECT w.line, w.value, w.prev FROM (SELECT u.line, u.value, LAG(u.value) OVER ("
        f"PARTITION BY u.patient_id, u.analyte ORDER BY u.collected_at) AS prev FROM ("
        f"SELECT line, patient_id, analyte, collected_at, value FROM {STAGE} WHERE comparator = ''"
        f"{only_patients(only)} "
        f"UNION ALL SELECT NULL, l.patient_id, l.analyte, l.collected_at, l.value FROM {lab} l "
        f"WHERE l.voided_at IS NULL AND l.comparator = ''{only_patients(only, 'l.patient_id')} "
        f"AND l.patient_id IN (SELECT patient_id FROM {STAGE}) "
        f"AND l.id NOT IN (SELECT s.lab_id FROM {STAGE} s WHERE s.lab_id IS NOT NULL)) u) w "
        f"WHERE w.line IS NOT NULL AND w.prev > 0 "
        f"AND (w.value <= 0 OR w.value >= w.prev * %s OR w.prev >= w.value * %s)",
        [ratio, ratio],
    ):
        for line, value, prev in batch:
            if units.is_tenfold_jump(_decimal(prev), _decimal(value)):
                jumps.append((line, _decimal(prev)))
    for start in range(0, len(jumps), CHUNK):
        part = dict(jumps[start : start + CHUNK])
        marks = ", ".join(["%s"] * len(part))
        cursor.execute(
            f"SELECT line, analyte, entered_value, entered_unit FROM {STAGE} WHERE line IN ({marks})",
            list(part),
        )
        updates = []
        for line, analyte, entered_value, entered_unit in cursor.fetchall():
            # Re-validate with the previous value to get the same message as the entry form.
            again = services.validate_lab(
                analyte=analyte,
                value_text=entered_value,
                unit=entered_unit,
                previous=part[line],
                allow_exponent=True,  # only re-reads a value that was accepted already
            )
            updates.append((json.dumps(again.warnings), _SEP.join(again.warning_texts), line))
        cursor.executemany(
            f"UPDATE {STAGE} SET flags0 = COALESCE(flags0, flags), "
            f"warnings0 = COALESCE(warnings0, warnings), flags = %s, warnings = %s WHERE line = %s",
            updates,
        )


def _notes(cursor: Any, report: im.ImportReport) -> None:
    """Stored, but flagged (SPEC 2.2), and values converted from another unit (SPEC 8.5)."""
    fn = report.filename
    shown = hidden = 0
    for batch in _batches(
        f"SELECT line, warnings, unit_note FROM {STAGE} WHERE warnings <> '' OR unit_note <> '' ORDER BY line"
    ):
        for line, warnings, unit_note in batch:
            texts = [
                _("%(file)s, line %(line)d: stored and flagged: %(warning)s")
                % {"file": fn, "line": line, "warning": warning}
                for warning in (warnings.split(_SEP) if warnings else [])
            ]
            # A lab system sends its units and decimals deliberately: said, never asked (SPEC 8.5).
            texts += [
                _("%(file)s, line %(line)d: stored: %(note)s") % {"file": fn, "line": line, "note": note}
                for note in (unit_note.split(_SEP) if unit_note else [])
            ]
            for text in texts:
                if shown < NOTES_SHOWN:
                    report.notes.append(text)
                    shown += 1
                else:
                    hidden += 1
    if hidden:
        report.notes.append(
            _("%(file)s: %(count)d more note(s) on stored values are not shown.")
            % {"file": fn, "count": hidden}
        )


def _write(ctx: im._Context) -> set[int]:
    """Rows, corrections and history rows with set-based statements; the patients touched."""
    lab = _lab_table()
    ops = connection.ops
    pg = connection.vendor == "postgresql"
    flags = "s.flags::jsonb" if pg else "s.flags"
    now = ops.adapt_datetimefield_value(ctx.now)
    user = ctx.history_user
    user_id = getattr(user, "pk", None)
    entered_by = getattr(ctx.entered_by, "pk", None)
    with connection.cursor() as cursor:
        before = last_key(cursor, lab)
        cursor.execute(
            f"INSERT INTO {lab} (voided_at, voided_by_id, void_reason, source, entered_by_id, entered_at, "
            f"version, patient_id, analyte, value, comparator, collected_at, entered_value, entered_unit, "
            f"loinc, note, flags) SELECT NULL, NULL, '', %s, %s, %s, 1, s.patient_id, s.analyte, s.value, "
            f"s.comparator, s.collected_at, s.entered_value, s.entered_unit, s.loinc, s.note, {flags} "
            f"FROM {STAGE} s WHERE s.lab_id IS NULL ORDER BY s.line",
            [ctx.source, entered_by, now],
        )
        if ctx.correct:
            sets = ", ".join(
                f"{col} = (SELECT {flags if col == 'flags' else 's.' + col} FROM {STAGE} s "
                f"WHERE s.lab_id = {lab}.id)"
                for col in ("value", "comparator", "entered_value", "entered_unit", "loinc", "flags", "note")
            )
            cursor.execute(
                f"UPDATE {lab} SET {sets}, version = version + 1 "
                f"WHERE id IN (SELECT lab_id FROM {STAGE} WHERE lab_id IS NOT NULL)"
            )
        insert_history(
            cursor,
            LabResult,
            stage=STAGE,
            stored_key="lab_id",
            after=before,
            corrected=ctx.correct,
            now=now,
            reason=ctx.correction_reason,
            user_id=user_id,
        )
        return touched_patients(cursor, STAGE)


def last_key(cursor: Any, table: str) -> int:
    """The highest ``id`` of ``table`` (0 when empty): the rows inserted after it are the write's."""
    cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
    return int(cursor.fetchone()[0])


def insert_history(
    cursor: Any,
    model: Any,
    *,
    stage: str,
    stored_key: str,
    after: int,
    corrected: bool,
    now: Any,
    reason: str,
    user_id: int | None,
) -> None:
    """The django-simple-history rows of the staged rows, with two ``INSERT … SELECT``.

    The rows the write created ("+", "imported") are those with a key above ``after`` (read
    before their ``INSERT``), in key order, which is the file's; on PostgreSQL, where other
    patients' writers insert meanwhile, those of the file's patients (locked by the write).
    The corrected rows ("~", with ``reason``; only when the file ``corrected`` stored values)
    are named by the staged rows' ``stored_key``.
    Labs and observations share it. Neither joins the stored rows on their natural key.
    """
    table = model._meta.db_table
    head, selected = store.history_insert(model)
    ours = (
        f" AND o.patient_id IN (SELECT patient_id FROM {stage})" if connection.vendor == "postgresql" else ""
    )
    cursor.execute(
        f"{head} SELECT {selected}, %s, %s, '+', %s FROM {table} o WHERE o.id > %s{ours} ORDER BY o.id",
        [now, "imported", user_id, after],
    )
    if corrected:
        cursor.execute(
            f"{head} SELECT {selected}, %s, %s, '~', %s FROM {stage} s JOIN {table} o "
            f"ON o.id = s.{stored_key} ORDER BY s.line",
            [now, reason, user_id],
        )


def touched_patients(cursor: Any, stage: str) -> set[int]:
    """The patients of the staged rows; the staging table is dropped."""
    cursor.execute(f"SELECT DISTINCT patient_id FROM {stage}")
    ids = {pid for (pid,) in cursor.fetchall()}
    cursor.execute(f"DROP TABLE IF EXISTS {stage}")
    return ids
