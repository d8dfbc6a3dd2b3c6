"""Streamed, set-based import of observations.csv (issue 10, item 3).

The same machinery as labs.csv (``patients/bulk.py``): the rows are read one at a
time (``csvread.iter_rows``), each row's cells are parsed as the in-memory planner
did and normalised by the observations writer's own validation
(``services.validate_observation``), and the good rows go to a temporary staging
table in chunks (``COPY`` on PostgreSQL, ``executemany`` on SQLite). Duplicates in
the file, identical stored days (skipped) and conflicts are then found with joins on
that table, and the rows and their history rows go in with ``INSERT … SELECT``.
Nothing the size of the file is held in memory: only the file's patients, the
first problems of the report, and one chunk of rows.

The messages, the dry run, the skip of identical rows and corrections with a
reason are those of the in-memory planner it replaced.
"""

# The SQL below is built only from constant table and column names; values are parameters.
# ruff: noqa: S608

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils.translation import gettext as _

from patients import bulk, services
from patients import imports as im
from patients.models import TMAX_MAX_C, TMAX_MIN_C, Hypotension, Observation, Oxygen, Patient
from scoring.rules.days import MAX_DAY, MIN_DAY, day_of_date

STAGE = "import_obs_stage"
FIELDS: tuple[str, ...] = services.OBSERVATION_FIELDS  # the values of one day, as the writer takes them
_STAGE_COLUMNS = ("line", "patient_id", "date", *FIELDS)
_TENTH = Decimal("0.1")


def _table() -> str:
    return Observation._meta.db_table


def _same(left: str, right: str) -> str:
    """Equal, a missing value equal to a missing value (Tmax may be empty)."""
    if connection.vendor == "postgresql":
        return f"{left} IS NOT DISTINCT FROM {right}"
    return f"{left} IS {right}"  # SQLite's null-safe equality


def _all_same(left: str, right: str) -> str:
    """Every value of the day equal: ``left`` and ``right`` are table aliases or column prefixes."""
    return " AND ".join(_same(f"{left}{f}", f"{right}{f}") for f in FIELDS)


def _create_stage(cursor: Any) -> None:
    pg = connection.vendor == "postgresql"
    cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
    cursor.execute(
        f"CREATE TEMP TABLE {STAGE} ("
        "line integer PRIMARY KEY, patient_id bigint NOT NULL, date date NOT NULL, "
        f"tmax_c {'numeric(3, 1)' if pg else 'decimal'} NULL, "
        "hypotension varchar(24) NOT NULL, oxygen varchar(24) NOT NULL, antipyretic boolean NOT NULL, "
        "tocilizumab boolean NOT NULL, corticosteroids boolean NOT NULL, obs_id bigint NULL)"
    )
    cursor.execute(f"CREATE INDEX {STAGE}_key ON {STAGE} (patient_id, date)")


def _check_values(row: im._Row, filename: str) -> list[tuple[str, str]] | tuple[Any, ...]:
    """One day's values: their problems (column, reason), or the values the writer stores.

    The cells are read as the in-memory planner read them (their messages), then the
    observations writer's validation normalises them (Tmax to one decimal, the
    categories, the flags). The same cells always give the same answer, so a file's
    repeats are checked once (``plan_observations`` keeps the answers, a bounded number).
    """
    found: list[im.RowError] = []
    c = im._Cells(row, filename, found)
    values = {
        "tmax_c": c.decimal("tmax_c", low=TMAX_MIN_C, high=TMAX_MAX_C, unit="°C", places=1),
        "hypotension": c.choice("hypotension", Hypotension.values, Hypotension.NONE),
        "oxygen": c.choice("oxygen", Oxygen.values, Oxygen.NONE),
        "antipyretic": c.boolean("antipyretic"),
        "tocilizumab": c.boolean("tocilizumab"),
        "corticosteroids": c.boolean("corticosteroids"),
    }
    if c.bad:
        return [(e.column, e.reason) for e in found]
    try:
        clean = services.validate_observation(values)
    except ValidationError as exc:
        return [(column, message) for column, messages in exc.message_dict.items() for message in messages]
    return tuple(clean[f] for f in FIELDS)


def _future(day_date: date, known: dict[date, list[str]]) -> list[str]:
    """The writer's refusal of a day still to come, asked once per date of the file (a bounded number)."""
    messages = known.get(day_date)
    if messages is None:
        try:
            services.check_not_future_date(day_date, "date")
            messages = []
        except ValidationError as exc:
            messages = exc.message_dict.get("date", exc.messages)
        if len(known) >= bulk.CHECKS_KEPT:
            known.clear()
        known[day_date] = messages
    return messages


def plan_observations(text: im.CsvSource, report: im.ImportReport, ctx: im._Context) -> im.Plan | None:
    """Read observations.csv streamed into a staging table and check it; its plan, or None.

    As ``bulk.plan_labs``: the checks against the stored rows are the plan's ``check``.
    """
    fn = report.filename
    # First pass: the file's MRNs only, to load its patients once (locked by ``recheck``).
    mrns: set[str] = set()
    # A file that cannot be read is reported by the second pass.
    rows, _header = im.iter_rows(text, kind=im.OBSERVATIONS, filename=fn, errors=[])
    for row in rows:
        mrns.add(row.cells.get("mrn", ""))
    patients = im._patients_by_mrn(mrns, lock=False, scope=ctx.scope)
    del mrns
    deaths = im._death_dates(patients)
    ops = connection.ops
    read_errors = bulk._Problems()  # the file itself: a file that cannot be read is only that
    row_errors = bulk._Problems()
    rows, _header = im.iter_rows(text, kind=im.OBSERVATIONS, filename=fn, errors=read_errors)
    chunk: list[tuple[Any, ...]] = []
    checks: dict[tuple[str, ...], list[tuple[str, str]] | tuple[Any, ...]] = {}
    future: dict[date, list[str]] = {}
    with connection.cursor() as cursor:
        _create_stage(cursor)
        for row in rows:
            report.rows += 1
            c = im._Cells(row, fn, row_errors)
            patient = im._unknown_mrn(c, patients, report)
            day_date = c.date("date", required=True)
            if patient is not None and day_date is not None:
                day = day_of_date(day_date, patient.infusion.infusion_date)
                if not MIN_DAY <= day <= MAX_DAY:
                    c.error("date", im._day_error(day, _("this date")))
                else:
                    for message in _future(day_date, future):
                        c.error("date", message)
                    death = deaths.get(patient.pk)
                    if death is not None and day_date > death[0]:
                        c.error("date", services.after_death_text(*death, day_date))
            key = tuple(c.raw(f) for f in FIELDS)
            checked = checks.get(key)
            if checked is None:
                checked = _check_values(row, fn)
                if len(checks) >= bulk.CHECKS_KEPT:
                    checks.clear()  # bounded whatever the file
                checks[key] = checked
            if isinstance(checked, list):
                for column, message in checked:
                    c.error(column, message)
                continue
            if c.bad or patient is None or day_date is None:
                continue
            tmax, *others = checked
            chunk.append(
                (
                    row.line,
                    patient.pk,
                    ops.adapt_datefield_value(day_date),
                    ops.adapt_decimalfield_value(tmax, 3, 1),
                    *others,
                )
            )
            if len(chunk) >= bulk.CHUNK:
                bulk._flush(cursor, chunk, STAGE, _STAGE_COLUMNS)
        bulk._flush(cursor, chunk, STAGE, _STAGE_COLUMNS)
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {STAGE}")  # a temporary table has no statistics otherwise
        if read_errors:
            bulk._report_read_errors(report, read_errors)
            return None
        duplicates = bulk._Problems()
        _duplicates(cursor, report, duplicates, patients)
        # Row errors in line order, then the conflicts of the good rows (``check``).
        bulk._report_problems(report, row_errors, duplicates)

    def check_rows(only: list[int] | None) -> None:
        with connection.cursor() as cursor:
            conflicts = bulk._Problems()
            _classify(cursor, report, ctx, patients, conflicts, only)
            if conflicts:
                bulk._report_problems(report, conflicts)

    checks = bulk.Rechecks(
        Observation, patients, check_rows, lambda: im.patients_recheck(patients, deaths, report, ctx)
    )
    return im.Plan(
        write=lambda: _write(ctx),
        check=checks.check,
        recheck=checks.recheck,
        discard=lambda: bulk.drop_stage(STAGE),
    )


def _day_text(value: Any) -> str:
    """A staged date as the file wrote it (ISO 8601), from either database."""
    return value.isoformat() if isinstance(value, date) else str(value)


def _duplicates(
    cursor: Any, report: im.ImportReport, errors: list[im.RowError], patients: dict[str, Patient]
) -> None:
    """A day twice in the file: skipped when the same values, refused otherwise."""
    mrn_of = bulk._mrn_of(patients)
    firsts = ", ".join(f"FIRST_VALUE({f}) OVER w AS first_{f}" for f in FIELDS)
    found = 0
    for batch in bulk._batches(
        # A window over the key: each row against the first good row of its day.
        f"SELECT line, patient_id, date, first_line, CASE WHEN {_all_same('', 'first_')} THEN 1 ELSE 0 END "
        f"FROM (SELECT line, patient_id, date, {', '.join(FIELDS)}, FIRST_VALUE(line) OVER w AS first_line, "
        f"{firsts} FROM {STAGE} WINDOW w AS (PARTITION BY patient_id, date ORDER BY line)) d "
        f"WHERE line <> first_line ORDER BY line"
    ):
        for line, patient_id, day, first_line, same in batch:
            found += 1
            if same:
                report.skipped += 1
                continue
            day_text = _day_text(day)
            errors.append(
                im.RowError(
                    report.filename,
                    line,
                    "date",
                    day_text,  # the cell as written: a date is accepted only as YYYY-MM-DD
                    _("%(mrn)s %(date)s appears again with other values (first on line %(line)d)")
                    % {"mrn": mrn_of[patient_id], "date": day_text, "line": first_line},
                )
            )
    if found:
        cursor.execute(
            f"DELETE FROM {STAGE} WHERE line IN (SELECT line FROM (SELECT line, ROW_NUMBER() OVER ("
            f"PARTITION BY patient_id, date ORDER BY line) AS n FROM {STAGE}) d WHERE n > 1)"
        )


def _staged_value(field: str, value: Any) -> Any:
    """A staged value as the writer's validation gave it (SQLite returns numbers and 0/1)."""
    if field == "tmax_c":
        return None if value is None else Decimal(str(value)).quantize(_TENTH)
    if field in ("hypotension", "oxygen"):
        return value
    return bool(value)


def _classify(
    cursor: Any,
    report: im.ImportReport,
    ctx: im._Context,
    patients: dict[str, Patient],
    conflicts: bulk._Problems,
    only: list[int] | None = None,
) -> None:
    """Join the staged days to the stored ones: skip, conflict, correction or creation.

    ``only``: the days of these patients (a re-check under the lock, ``bulk.Rechecks``); None: all.
    """
    table = _table()
    fn = report.filename
    these = bulk.only_patients(only)
    cursor.execute(
        f"UPDATE {STAGE} SET obs_id = (SELECT o.id FROM {table} o WHERE o.patient_id = {STAGE}.patient_id "
        f"AND o.date = {STAGE}.date AND o.voided_at IS NULL) WHERE 1 = 1{these}"
    )
    # The same values stored already: skipped (re-importing a file changes nothing).
    cursor.execute(
        f"DELETE FROM {STAGE} WHERE obs_id IS NOT NULL AND EXISTS (SELECT 1 FROM {table} o "
        f"WHERE o.id = {STAGE}.obs_id AND {_all_same('o.', f'{STAGE}.')}){these}"
    )
    report.skipped += cursor.rowcount
    # Re-importing a file must not bring back a day someone voided (SPEC 8.2), as for labs.
    voided = (
        f"SELECT MAX(v.id) FROM {table} v WHERE v.patient_id = s.patient_id AND v.date = s.date "
        f"AND {_all_same('v.', 's.')} AND v.voided_at IS NOT NULL"
    )
    bulk.skip_voided(cursor, report, stage=STAGE, table=table, voided=voided, stored_key="obs_id", only=only)
    cursor.execute(f"SELECT COUNT(*), COUNT(obs_id) FROM {STAGE}")
    total, stored = cursor.fetchone()
    report.created, report.updated = total - stored, stored
    if not stored or ctx.correct:
        return
    report.updated = 0
    mrn_of = bulk._mrn_of(patients)
    for batch in bulk._batches(
        f"SELECT line, obs_id, patient_id, date, {', '.join(FIELDS)} FROM {STAGE} "
        f"WHERE obs_id IS NOT NULL{bulk.only_patients(only)} ORDER BY line"
    ):
        current = Observation.objects.in_bulk([r[1] for r in batch])
        for line, obs_id, patient_id, day, *staged in batch:
            stored_obs = current[obs_id]
            for f, raw in zip(FIELDS, staged, strict=True):
                value, was = _staged_value(f, raw), getattr(stored_obs, f)
                if was == value:
                    continue
                conflicts.append(
                    im.RowError(
                        fn,
                        line,
                        f,
                        im._cell_text(value),
                        _(
                            "conflict: the observation of %(mrn)s on %(date)s is stored with %(column)s "
                            "%(stored)s; to change it, %(how)s"
                        )
                        % {
                            "mrn": mrn_of[patient_id],
                            "date": _day_text(day),
                            "column": f,
                            "stored": repr(im._cell_text(was)),
                            "how": ctx.correct_hint,
                        },
                    )
                )


def _write(ctx: im._Context) -> set[int]:
    """Days, corrections and history rows with set-based statements; the patients touched."""
    table = _table()
    ops = connection.ops
    now = ops.adapt_datetimefield_value(ctx.now)
    user_id = getattr(ctx.history_user, "pk", None)
    entered_by = getattr(ctx.entered_by, "pk", None)
    fields = ", ".join(FIELDS)
    with connection.cursor() as cursor:
        before = bulk.last_key(cursor, table)
        cursor.execute(
            f"INSERT INTO {table} (voided_at, voided_by_id, void_reason, source, entered_by_id, entered_at, "
            f"version, patient_id, date, {fields}, note) SELECT NULL, NULL, '', %s, %s, %s, 1, s.patient_id, "
            f"s.date, {', '.join('s.' + f for f in FIELDS)}, '' FROM {STAGE} s WHERE s.obs_id IS NULL "
            f"ORDER BY s.line",
            [ctx.source, entered_by, now],
        )
        if ctx.correct:
            # A correction changes the day's values, never its note (as the in-memory planner).
            sets = ", ".join(
                f"{f} = (SELECT s.{f} FROM {STAGE} s WHERE s.obs_id = {table}.id)" for f in FIELDS
            )
            cursor.execute(
                f"UPDATE {table} SET {sets}, version = version + 1 "
                f"WHERE id IN (SELECT obs_id FROM {STAGE} WHERE obs_id IS NOT NULL)"
            )
        bulk.insert_history(
            cursor,
            Observation,
            stage=STAGE,
            stored_key="obs_id",
            after=before,
            corrected=ctx.correct,
            now=now,
            reason=ctx.correction_reason,
            user_id=user_id,
        )
        return bulk.touched_patients(cursor, STAGE)
