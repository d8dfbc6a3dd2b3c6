"""CSV imports of SPEC 8.2: patients, labs, observations and events.

Each import reads the whole file, validates every row in memory against the
stored data (a constant number of queries; labs.csv and observations.csv are
streamed and validated set-based instead, in patients/bulk.py and
patients/bulk_observations.py), and then either refuses the file,
listing every bad row, or writes it all in one transaction: rows and their
change history in bulk, then one recompute of each affected patient.

Re-importing the same file changes nothing. A row whose key is already stored
with other values is a conflict that refuses the whole file, unless the import
runs with ``correct=True`` and a reason: then the stored row is updated and its
previous values stay in the history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from crsrisk.transactions import lock_free_atomic
from patients import services
from patients.csvread import (  # noqa: F401  # re-exported: the reading of the file lives there
    BARE_DATE_HOUR,
    COLUMNS,
    EVENTS,
    FORMULA_TRIGGERS,
    LABS,
    OBSERVATIONS,
    OPTIONAL_COLUMNS,
    PATIENTS,
    CsvSource,
    RowError,
    _Cells,
    _Row,
    column_cells,
    decode,
    iter_rows,
    parse_collected_at,
    parse_decimal,
    quote_text_cell,
    read_rows,
    unquote_text_cell,
)
from patients.models import (
    MRN_VALIDATOR,
    CareTeam,
    ClinicalEvent,
    DataTransfer,
    EventKind,
    GradeOverride,
    Infusion,
    LabResult,
    Observation,
    Patient,
    SiteParameters,
    Source,
    TransferDirection,
    validate_display_text,
)
from scoring.rules.days import MAX_DAY, MIN_DAY, day_of_date, format_day
from scoring.services import recompute_later, recompute_patients, recompute_pending, site_zone

NAME_MAX_LENGTH: int = Patient._meta.get_field("name").max_length or 0
TEAM_MAX_LENGTH: int = CareTeam._meta.get_field("name").max_length or 0
DIAGNOSIS_MAX_LENGTH: int = Patient._meta.get_field("diagnosis").max_length or 0
PRODUCT_MAX_LENGTH: int = Infusion._meta.get_field("product").max_length or 0
ENTERED_VALUE_MAX_LENGTH: int = LabResult._meta.get_field("entered_value").max_length or 0
ENTERED_UNIT_MAX_LENGTH: int = LabResult._meta.get_field("entered_unit").max_length or 0


# --- report ------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did, or would do (dry run), or why it refused the file."""

    kind: str
    filename: str
    dry_run: bool = False
    rows: int = 0
    created: int = 0
    skipped: int = 0
    updated: int = 0
    patients_recomputed: int = 0
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scoped: bool = False  # limited to the user's care teams (the web)
    unknown_mrns: set[str] = field(default_factory=set)  # not found (in scope): refused accesses
    transfer_id: int | None = None  # the DataTransfer row that records this attempt
    # A big file's report is bounded (patients/bulk.py): the problems after the first ones
    # are only counted, per column ("" for a whole row), with the lines they are on.
    hidden_errors: dict[str, int] = field(default_factory=dict)
    hidden_lines: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def refused_rows(self) -> int:
        return len({e.line for e in self.errors}) + self.hidden_lines

    @property
    def error_count(self) -> int:
        return len(self.errors) + sum(self.hidden_errors.values())

    def hidden_error_lines(self) -> list[str]:
        """One line per column of the problems not listed in full."""
        out = []
        for column, count in sorted(self.hidden_errors.items()):
            if column:
                text = ngettext(
                    "%(file)s: %(count)d more problem in column %(column)s is not listed.",
                    "%(file)s: %(count)d more problems in column %(column)s are not listed.",
                    count,
                )
            else:
                text = ngettext(
                    "%(file)s: %(count)d more problem with a whole row is not listed.",
                    "%(file)s: %(count)d more problems with whole rows are not listed.",
                    count,
                )
            out.append(text % {"file": self.filename, "count": count, "column": column})
        return out

    def lines(self) -> list[str]:
        """The report as text lines, for stderr or a page."""
        if self.errors:
            out = [str(e) for e in self.errors] + self.hidden_error_lines()
            rows = (
                _("%(refused)d of %(rows)d row(s) have errors")
                % {"refused": self.refused_rows, "rows": self.rows}
                if self.rows
                else _("the file itself has errors")
            )
            out.append(
                _("%(file)s: refused, nothing was imported: %(rows)s (%(errors)d error(s)).")
                % {"file": self.filename, "rows": rows, "errors": self.error_count}
            )
            return out
        out = list(self.notes)
        counts = {
            "file": self.filename,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
        }
        if self.dry_run:
            line = _(
                "%(file)s: %(rows)d row(s): would create %(created)d, would update %(updated)d, "
                "skipped %(skipped)d already stored; dry run, nothing was written."
            )
        else:
            line = _(
                "%(file)s: %(rows)d row(s): created %(created)d, updated %(updated)d, "
                "skipped %(skipped)d already stored."
            )
        out.append(line % counts)
        if not self.dry_run and self.patients_recomputed:
            out.append(_("recomputed %(count)d patient(s).") % {"count": self.patients_recomputed})
        return out


class _Rollback(Exception):  # noqa: N818  # control flow, not an error
    """Leave the import's transaction without writing."""


def _refuse_future(c: _Cells, column: str, check: Callable[[Any, str], None], value: Any) -> None:
    """Record the services' refusal of a date or time still to come on this cell."""
    try:
        check(value, column)
    except ValidationError as exc:
        for message in exc.message_dict.get(column, exc.messages):
            c.error(column, message)


def _day_error(day: int, what: str) -> str:
    return _(
        "%(what)s is day %(day)s after infusion, outside the accepted range %(low)s…%(high)s: "
        "probably a wrong date or a wrong patient"
    ) % {"what": what, "day": format_day(day), "low": format_day(MIN_DAY), "high": format_day(MAX_DAY)}


# --- the shared frame of every import --------------------------------------------------------


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def record_transfer(
    *,
    user: Any,
    direction: str,
    kind: str,
    filename: str,
    created: int = 0,
    skipped: int = 0,
    updated: int = 0,
    refused: int = 0,
    patients: int = 0,
    dry_run: bool = False,
    accepted: bool = True,
    reason: str = "",
    detail: str = "",
) -> DataTransfer:
    """Append an import or export to the audit trail."""
    actor = _user_or_none(user)
    return DataTransfer.objects.create(
        user=actor,
        username=getattr(actor, "username", "") or "",
        direction=direction,
        kind=kind,
        filename=filename[:500],
        rows_created=created,
        rows_skipped=skipped,
        rows_updated=updated,
        rows_refused=refused,
        patients=patients,
        dry_run=dry_run,
        accepted=accepted,
        correction_reason=reason,
        detail=detail,
    )


def _patients_by_mrn(
    mrns: Iterable[str], *, lock: bool, scope: QuerySet[Patient] | None
) -> dict[str, Patient]:
    qs = Patient.objects.filter(mrn__in=set(mrns)).select_related("infusion", "care_team")
    if scope is not None:
        # A subquery, not the scope's joins: the lock below must stay on the patient rows alone.
        qs = qs.filter(pk__in=scope.values("pk"))
    if lock:
        # Serialize with the services' per-patient writers; only the patient rows are locked,
        # in one order (by pk), so two imports over the same patients cannot deadlock.
        qs = qs.select_for_update(of=("self",)).order_by("pk")
    return {p.mrn: p for p in qs}


def _unknown_mrn(cells: _Cells, patients: Mapping[str, Patient], report: ImportReport) -> Patient | None:
    mrn = cells.raw("mrn")
    if not mrn:
        cells.error("mrn", _("mrn is required"))
        return None
    patient = patients.get(mrn)
    if patient is None:
        report.unknown_mrns.add(mrn)
        if report.scoped:
            message = _(
                "no patient with MRN %(mrn)s in your care teams; import patients.csv first "
                "(MRNs are case-sensitive)"
            )
        else:
            message = _("no patient with MRN %(mrn)s; import patients.csv first (MRNs are case-sensitive)")
        cells.error("mrn", message % {"mrn": mrn})
        return None
    if not hasattr(patient, "infusion"):  # pragma: no cover - every service registers an infusion
        cells.error("mrn", _("patient %(mrn)s has no infusion date") % {"mrn": mrn})
        return None
    return patient


Planner = Callable[[list[_Row], set[str], "ImportReport", "_Context"], Callable[[], set[int]] | None]


@dataclass
class _Context:
    user: Any
    correct: bool
    reason: str
    source: str
    synthetic: bool = False
    now: datetime = field(default_factory=timezone.now)
    # Where a conflict message says how to correct: the command's options, or the web form.
    correct_hint: str = ""
    # The patients the user may touch, and the care teams they may import into; None: all.
    scope: QuerySet[Patient] | None = None
    teams: frozenset[str] | None = None

    @property
    def history_user(self) -> Any:
        return _user_or_none(self.user)

    @property
    def entered_by(self) -> Any:
        return _user_or_none(self.user)

    @property
    def correction_reason(self) -> str:
        return f"corrected by import: {self.reason}"


# The import's stage ("write", "recompute") and how far it is (done, total; 0, 0: not counted).
ImportProgress = Callable[[str, int, int], None]


# Streamed from the open file, which they read twice: their MRNs first, then their rows.
STREAMED_KINDS = (LABS, OBSERVATIONS)


def run_import(
    kind: str,
    data: CsvSource,
    *,
    filename: str,
    user: Any = None,
    dry_run: bool = False,
    correct: bool = False,
    reason: str = "",
    source: str = Source.CSV,
    recompute: bool = True,
    affected: set[int] | None = None,
    synthetic: bool = False,
    scope: QuerySet[Patient] | None = None,
    teams: Iterable[str] | None = None,
    correct_hint: str = "",
    on_progress: ImportProgress | None = None,
    in_write: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Validate the whole file, then write all of it or nothing; audit the attempt.

    With ``recompute=False`` the caller recomputes the patients collected in
    ``affected`` itself (the demo seeds four files, then recomputes once).
    ``synthetic`` labels the patients created as synthetic demo patients.
    ``scope`` limits the patients the file may touch (the web: the user's care
    teams) and ``teams`` the care teams patients.csv may name; both default to all.
    ``correct_hint`` says, in conflict messages, how to import as a correction.
    ``on_progress(stage, done, total)`` hears where the import is: ``"write"`` (0, 0) once the
    file is valid and its rows go in, then ``"recompute"`` (patients done, patients) after each
    chunk of patients; it is called inside the import's transaction (the background job writes
    it through a connection of its own, see ``crsrisk.jobs.services``).
    ``in_write(report)`` runs inside the transaction that writes the rows, after them, or, when
    the file is refused, the one that writes the refusal's audit record (the import job records
    its result there, so a job delivered again never imports nor audits twice).
    labs.csv and observations.csv are checked with no lock, then written under it, then
    recomputed a chunk of patients per commit (``_import_in_two_phases``).
    """
    if kind not in COLUMNS:
        raise ValueError(f"unknown import kind {kind!r}; accepted: {', '.join(COLUMNS)}")
    report = ImportReport(kind=kind, filename=filename, dry_run=dry_run, scoped=scope is not None)
    reason = (reason or "").strip()
    if kind in STREAMED_KINDS:
        # Streamed: decoded a line at a time (patients/bulk.py, patients/bulk_observations.py).
        text: CsvSource = data
    else:
        # patients.csv and events.csv are a ward's size: read whole and planned in memory.
        text, errors = decode(data if isinstance(data, str | bytes) else data.read(), filename)
        report.errors.extend(errors)
    if correct and not reason:
        report.errors.append(
            RowError(filename, 0, "", "", _("a correction needs a reason: give --reason TEXT with --correct"))
        )
    ctx = _Context(
        user=user,
        correct=correct,
        reason=reason,
        source=source,
        synthetic=synthetic,
        correct_hint=correct_hint or _("import with --correct --reason TEXT"),
        scope=scope,
        teams=None if teams is None else frozenset(teams),
    )
    if kind in STREAMED_KINDS and not report.errors:
        _import_in_two_phases(kind, text, report, ctx, recompute, affected, on_progress, in_write)
        return report
    # patients.csv and events.csv, a ward's size: checked and written in one transaction.
    # A dry run writes only its temporary tables: on SQLite it holds no write lock meanwhile.
    atomic = lock_free_atomic if dry_run else transaction.atomic
    try:
        with atomic():
            if not report.errors:
                plan = _plan(kind, text, report, ctx)
                if not report.errors and not dry_run and plan is not None:
                    if on_progress is not None:
                        on_progress("write", 0, 0)
                    ids = plan.write()
                    if recompute:
                        report.patients_recomputed = (
                            recompute_patients(ids, on_progress=_recompute_progress(on_progress))
                            if ids
                            else 0
                        )
                    elif affected is not None:
                        affected |= ids
                    _audit(report, ctx)
                    if in_write is not None:
                        in_write(report)
            if report.errors or dry_run:
                raise _Rollback
    except _Rollback:
        _record_refusal(report, ctx, in_write)
    return report


def _record_refusal(
    report: ImportReport, ctx: _Context, in_write: Callable[[ImportReport], None] | None
) -> None:
    """The audit record of a refused file (or a dry run), with ``in_write`` in one transaction."""
    with transaction.atomic():
        _audit(report, ctx)
        if in_write is not None and not report.dry_run:
            in_write(report)


def _import_in_two_phases(
    kind: str,
    text: CsvSource,
    report: ImportReport,
    ctx: _Context,
    recompute: bool,
    affected: set[int] | None,
    on_progress: ImportProgress | None,
    in_write: Callable[[ImportReport], None] | None,
) -> None:
    """labs.csv and observations.csv: read and checked first, then written under the lock.

    1. The file is read, parsed and checked into a staging table in a transaction that holds
       no write lock on SQLite (``lock_free_atomic``) and locks no patient on PostgreSQL: bedside
       entries go on meanwhile, however large the file. A dry run (the preview) stops here.
       On SQLite the staged rows are also checked against the stored ones there (conflicts,
       identical and voided rows, the ×10 jump: set-based joins).
    2. The write takes the lock: the file's patients are read again under their row locks (a
       change of infusion date, death or care team since the check refuses the file), the
       staged rows are checked against the stored ones (on SQLite only the rows of the patients
       whose stored rows changed since step 1: ``bulk.Rechecks``), and written all or nothing,
       with their history and the audit record, and the patients are marked for recompute, in
       one transaction.
    3. The marked patients are recomputed a chunk at a time, each chunk and the clearing of its
       marks one short commit (``scoring.services.recompute_pending``). A process that stops
       between them leaves marks, which the next ``recompute_pending`` finishes (the import job
       does when it is delivered again).

    Inside a caller's transaction (tests, the demo) the phases are savepoints of that transaction.
    """
    plan: Plan | None = None
    ids: set[int] = set()
    try:
        try:
            with lock_free_atomic():
                plan = _plan(kind, text, report, ctx)
                if plan is not None and (report.dry_run or report.errors or connection.vendor == "sqlite"):
                    plan.check()  # the whole report: conflicts with stored rows as well
                if plan is None or report.errors or report.dry_run:
                    raise _Rollback
            if on_progress is not None:
                on_progress("write", 0, 0)
            with transaction.atomic():
                plan.recheck()
                if report.errors:
                    raise _Rollback
                ids = plan.write()
                if recompute:
                    recompute_later(ids, now=ctx.now)
                    report.patients_recomputed = len(ids)
                elif affected is not None:
                    affected |= ids
                _audit(report, ctx)
                if in_write is not None:
                    in_write(report)
        except _Rollback:
            _record_refusal(report, ctx, in_write)
            return
    finally:
        if plan is not None:
            plan.discard()
    if recompute and ids:
        recompute_pending(ids, on_progress=_recompute_progress(on_progress))


def _recompute_progress(on_progress: ImportProgress | None) -> Callable[[int, int], None] | None:
    """``on_progress`` as a recompute reports to it: ``("recompute", patients done, patients)``."""
    if on_progress is None:
        return None
    progress = on_progress
    return lambda done, total: progress("recompute", done, total)


@dataclass
class Plan:
    """A file read and checked, ready to be written.

    ``write`` writes its rows and returns the patients touched. The streamed files
    (``bulk.plan_labs``, ``bulk_observations.plan_observations``) are checked in two steps,
    so that the part that reads the file holds no lock: ``check`` compares the staged rows
    with the stored ones (conflicts, skips, flags; into the report), and ``recheck``, under the
    write's lock, reads the file's patients again under their row locks, refusing the file if
    one changed since it was read, and checks again the rows of the patients whose stored rows
    changed since ``check`` (all of them when ``check`` has not run: ``bulk.Rechecks``).
    ``discard`` drops the staging table.
    """

    write: Callable[[], set[int]]
    check: Callable[[], None] = lambda: None
    recheck: Callable[[], None] = lambda: None
    discard: Callable[[], None] = lambda: None


def patients_recheck(
    patients: Mapping[str, Patient],
    deaths: Mapping[int, tuple[date, str]],
    report: ImportReport,
    ctx: _Context,
) -> bool:
    """Under the write's lock: the file's patients as they were when its rows were checked.

    The rows were checked against each patient's infusion date, recorded death and care team
    (``ctx.scope``) without a lock; a change since then refuses the file rather than write rows
    checked against what is no longer so (False, with the report's error). The patients stay
    locked until the write commits.
    """
    now = _patients_by_mrn(patients, lock=True, scope=ctx.scope)
    changed = sorted(
        mrn
        for mrn, p in patients.items()
        if mrn not in now
        or now[mrn].pk != p.pk
        or now[mrn].infusion.infusion_date != p.infusion.infusion_date
    )
    now_deaths = _death_dates(now)
    changed += sorted(
        mrn for mrn, p in now.items() if now_deaths.get(p.pk) != deaths.get(p.pk) and mrn not in changed
    )
    if not changed:
        return True
    report.errors.append(
        RowError(
            report.filename,
            0,
            "",
            "",
            ngettext(
                "patient %(mrns)s changed while the file was checked (infusion date, death or care "
                "team); nothing was imported: import the file again",
                "patients %(mrns)s changed while the file was checked (infusion date, death or care "
                "team); nothing was imported: import the file again",
                len(changed),
            )
            % {"mrns": ", ".join(changed[:10]) + ("…" if len(changed) > 10 else "")},
        )
    )
    return False


def _plan(kind: str, text: CsvSource, report: ImportReport, ctx: _Context) -> Plan | None:
    """Read and validate the file; its plan, or None when refused."""
    if kind == LABS:
        # Streamed and set-based, whatever the file's size (patients/bulk.py).
        from patients import bulk

        return bulk.plan_labs(text, report, ctx)
    if kind == OBSERVATIONS:
        from patients import bulk_observations

        return bulk_observations.plan_observations(text, report, ctx)
    assert isinstance(text, str)  # decoded by run_import
    rows, errors, header = read_rows(text, kind=kind, filename=report.filename)
    report.rows = len(rows)
    report.errors.extend(errors)
    if report.errors:
        return None
    write = _PLANNERS[kind](rows, header, report, ctx)
    return None if write is None else Plan(write=write)


def _audit(report: ImportReport, ctx: _Context) -> None:
    report.transfer_id = record_transfer(
        user=ctx.user,
        direction=TransferDirection.IMPORT,
        kind=report.kind,
        filename=report.filename,
        # A refused file wrote nothing, whatever its good rows would have done.
        created=report.created if report.ok else 0,
        skipped=report.skipped if report.ok else 0,
        updated=report.updated if report.ok else 0,
        refused=report.refused_rows,
        patients=report.patients_recomputed,
        dry_run=report.dry_run,
        accepted=report.ok,
        reason=ctx.reason if ctx.correct else "",
        detail="\n".join(report.lines()[:50]),
    ).pk


# --- patients.csv --------------------------------------------------------------------------


@dataclass
class _PatientValues:
    name: str
    sex: str
    birth_date: date | None
    care_team: str
    diagnosis: str
    product: str
    infusion_date: date
    baseline_mrd_pct: Decimal | None
    post_ld_mrd_pct: Decimal | None
    lymphodepletion_start: date | None
    baseline_mrd_comparator: str = ""
    post_ld_mrd_comparator: str = ""


_PATIENT_COMPARED = ("name", "sex", "birth_date", "diagnosis")
_INFUSION_COMPARED = (
    "product",
    "infusion_date",
    "baseline_mrd_pct",
    "post_ld_mrd_pct",
    "lymphodepletion_start",
    "baseline_mrd_comparator",
    "post_ld_mrd_comparator",
)


def _default_team_name() -> str:
    # Read only: a dry run must not create the default team.
    params = SiteParameters.objects.select_related("default_care_team").filter(pk=1).first()
    if params is not None and params.default_care_team is not None:
        return params.default_care_team.name
    return "Default"


def _stored_patient_values(p: Patient) -> dict[str, Any]:
    inf = p.infusion
    return {
        "name": p.name,
        "sex": p.sex,
        "birth_date": p.birth_date,
        "diagnosis": p.diagnosis,
        "care_team": p.care_team.name,
        **{f: getattr(inf, f) for f in _INFUSION_COMPARED},
    }


def _plan_patients(
    rows: list[_Row], header: set[str], report: ImportReport, ctx: _Context
) -> Callable[[], set[int]] | None:
    fn = report.filename
    has_ld = "lymphodepletion_start" in header
    existing = _patients_by_mrn((r.cells["mrn"] for r in rows), lock=not report.dry_run, scope=ctx.scope)
    elsewhere: set[str] = set()
    if ctx.scope is not None:
        # An MRN is unique site-wide: a patient of another team cannot be created again, nor changed.
        elsewhere = set(
            Patient.objects.filter(mrn__in={r.cells["mrn"] for r in rows})
            .exclude(mrn__in=set(existing))
            .values_list("mrn", flat=True)
        )
    default_team = _default_team_name()
    known_teams = set(CareTeam.objects.values_list("name", flat=True))
    # MRNs are unique whatever their case (issue 9): the stored spelling of each incoming MRN.
    stored_as = dict(
        Patient.objects.annotate(mrn_lower=Lower("mrn"))
        .filter(mrn_lower__in={r.cells["mrn"].lower() for r in rows})
        .values_list("mrn_lower", "mrn")
    )
    first_spelling: dict[str, tuple[str, int]] = {}
    parsed: dict[str, tuple[int, _PatientValues]] = {}
    for row in rows:
        c = _Cells(row, fn, report.errors)
        mrn = c.raw("mrn")
        try:
            MRN_VALIDATOR(mrn)
        except ValidationError:
            c.error("mrn", _("an MRN is 1–32 characters of A–Z, a–z, 0–9, '-' and '_'"))
        stored = stored_as.get(mrn.lower())
        if stored is not None and stored != mrn:
            if ctx.scope is not None:
                report.unknown_mrns.add(mrn)
            c.error(
                "mrn",
                _(
                    "MRN %(mrn)s is already stored as %(stored)s; MRNs that differ only in case are the "
                    "same patient."
                )
                % {"mrn": mrn, "stored": stored},
            )
        spelling, first_line = first_spelling.setdefault(mrn.lower(), (mrn, row.line))
        if spelling != mrn:
            c.error(
                "mrn",
                _(
                    "MRN %(mrn)s is %(first)s of line %(line)d in another case; MRNs that differ only "
                    "in case are the same patient"
                )
                % {"mrn": mrn, "first": spelling, "line": first_line},
            )
        if mrn in elsewhere:
            report.unknown_mrns.add(mrn)
            c.error(
                "mrn",
                _("MRN %(mrn)s belongs to a patient outside your care teams; it cannot be imported here")
                % {"mrn": mrn},
            )
        name = c.text("name", required=True, max_length=NAME_MAX_LENGTH)
        for column in ("name", "care_team"):
            try:
                validate_display_text(c.raw(column))
            except ValidationError as exc:
                c.error(column, exc.messages[0])
        sex = c.raw("sex").upper() or "U"
        if sex not in ("F", "M", "U"):
            c.error("sex", _("accepted: F, M or U (an empty cell means U)"))
        values = _PatientValues(
            name=name,
            sex=sex,
            birth_date=c.date("birth_date"),
            care_team=c.text("care_team", max_length=TEAM_MAX_LENGTH) or default_team,
            diagnosis=c.text("diagnosis", max_length=DIAGNOSIS_MAX_LENGTH) or "B-ALL",
            product=c.text("product", max_length=PRODUCT_MAX_LENGTH),
            infusion_date=c.date("infusion_date", required=True) or date.min,
            baseline_mrd_pct=c.mrd("baseline_mrd_pct", report.notes),
            post_ld_mrd_pct=c.mrd("post_ld_mrd_pct", report.notes),
            lymphodepletion_start=c.date("lymphodepletion_start") if has_ld else None,
            baseline_mrd_comparator=c.comparators.get("baseline_mrd_pct", ""),
            post_ld_mrd_comparator=c.comparators.get("post_ld_mrd_pct", ""),
        )
        if ctx.teams is not None and values.care_team not in ctx.teams:
            c.error(
                "care_team",
                _("care team %(team)s is not one of your care teams (%(teams)s)")
                % {"team": repr(values.care_team), "teams": ", ".join(sorted(ctx.teams)) or "-"},
            )
        if not c.bad:
            inf = values.infusion_date
            if values.lymphodepletion_start is not None and values.lymphodepletion_start > inf:
                c.error(
                    "lymphodepletion_start", _("lymphodepletion must start on or before the infusion date")
                )
            birth, ld = values.birth_date, values.lymphodepletion_start
            if birth is not None and birth > services.site_today():
                c.error("birth_date", _("the birth date is in the future: check the year"))
            elif birth is not None and birth > inf:
                c.error("birth_date", _("the birth date lies after the infusion date"))
            elif birth is not None and ld is not None and birth > ld:
                c.error("birth_date", _("the birth date lies after the start of lymphodepletion"))

        if mrn in parsed:
            first_line, first = parsed[mrn]
            if not c.bad and first != values:
                c.error(
                    "mrn",
                    _("MRN %(mrn)s appears again with other values (first on line %(line)d)")
                    % {"mrn": mrn, "line": first_line},
                )
            elif not c.bad:
                report.skipped += 1
            continue
        if c.bad:
            continue
        parsed[mrn] = (row.line, values)

    creates: list[tuple[str, _PatientValues]] = []
    updates: list[tuple[Patient, _PatientValues, list[str]]] = []
    for mrn, (line, values) in parsed.items():
        stored = existing.get(mrn)
        if stored is None:
            creates.append((mrn, values))
            continue
        old = _stored_patient_values(stored)
        new = {k: getattr(values, k) for k in old}
        if not has_ld:
            new["lymphodepletion_start"] = old["lymphodepletion_start"]
        changed = [k for k in old if old[k] != new[k]]
        if not changed:
            report.skipped += 1
        elif ctx.correct:
            if "infusion_date" in changed:
                try:
                    services.check_data_fits_infusion(stored, values.infusion_date)
                except ValidationError as exc:
                    for message in exc.message_dict.get("infusion_date", exc.messages):
                        report.errors.append(
                            RowError(fn, line, "infusion_date", str(values.infusion_date), message)
                        )
                    continue
            updates.append((stored, values, changed))
        else:
            for k in changed:
                shown = "" if new[k] is None else str(new[k])
                was = "" if old[k] is None else str(old[k])
                report.errors.append(
                    RowError(
                        fn,
                        line,
                        k,
                        shown,
                        _(
                            "conflict: patient %(mrn)s is stored with %(column)s %(stored)s; "
                            "to change it, %(how)s"
                        )
                        % {"mrn": mrn, "column": k, "stored": repr(was), "how": ctx.correct_hint},
                    )
                )
    # An age at infusion under 1 or over 100 is stored, but said: a wrong birth year is the
    # likelier story (SPEC 2.1). Only for rows that store a new birth or infusion date.
    dated = [
        *(m for m, _v in creates),
        *(p.mrn for p, _v, ch in updates if {"birth_date", "infusion_date"} & set(ch)),
    ]
    for mrn in sorted(dated, key=lambda m: parsed[m][0]):
        line, values = parsed[mrn]
        ages = services.patient_age_warnings(
            {"birth_date": values.birth_date, "infusion_date": values.infusion_date}
        )
        report.notes.extend(
            _("%(file)s, line %(line)d: stored: %(warning)s") % {"file": fn, "line": line, "warning": warning}
            for warning in ages.get("birth_date", [])
        )
    new_teams = sorted(
        {v.care_team for _mrn, v in creates} | {v.care_team for _, v, ch in updates if "care_team" in ch}
    )
    new_teams = [t for t in new_teams if t not in known_teams and t != default_team]
    for t in new_teams:
        note = (
            _("care team %(team)s would be created.")
            if report.dry_run
            else _("care team %(team)s was created.")
        )
        report.notes.append(note % {"team": repr(t)})
    report.created = len(creates)
    report.updated = len(updates)
    if report.errors:
        return None

    def write() -> set[int]:
        teams = {t.name: t for t in CareTeam.objects.all()}
        team_default = services.default_care_team()
        teams[team_default.name] = team_default
        for t in new_teams:
            teams[t] = CareTeam.objects.create(name=t)
        patients = [
            Patient(
                mrn=mrn,
                name=v.name,
                sex=v.sex,
                birth_date=v.birth_date,
                care_team=teams[v.care_team],
                diagnosis=v.diagnosis,
                synthetic=ctx.synthetic,
            )
            for mrn, v in creates
        ]
        patients = bulk_create_with_history(
            patients, Patient, default_user=ctx.history_user, default_change_reason="imported"
        )
        by_mrn = {p.mrn: p for p in patients}
        infusions = [
            Infusion(
                patient=by_mrn[mrn],
                product=v.product,
                infusion_date=v.infusion_date,
                lymphodepletion_start=v.lymphodepletion_start,
                baseline_mrd_pct=v.baseline_mrd_pct,
                post_ld_mrd_pct=v.post_ld_mrd_pct,
                baseline_mrd_comparator=v.baseline_mrd_comparator,
                post_ld_mrd_comparator=v.post_ld_mrd_comparator,
            )
            for mrn, v in creates
        ]
        bulk_create_with_history(
            infusions, Infusion, default_user=ctx.history_user, default_change_reason="imported"
        )
        changed_patients, changed_infusions = [], []
        for p, v, changed in updates:
            if any(k in changed for k in (*_PATIENT_COMPARED, "care_team")):
                for k in _PATIENT_COMPARED:
                    setattr(p, k, getattr(v, k))
                p.care_team = teams[v.care_team]
                p.version += 1
                changed_patients.append(p)
            if any(k in changed for k in _INFUSION_COMPARED):
                inf = p.infusion
                for k in _INFUSION_COMPARED:
                    if k != "lymphodepletion_start" or has_ld:
                        setattr(inf, k, getattr(v, k))
                inf.version += 1
                changed_infusions.append(inf)
        bulk_update_with_history(
            changed_patients,
            Patient,
            [*_PATIENT_COMPARED, "care_team", "version"],
            default_user=ctx.history_user,
            default_change_reason=ctx.correction_reason,
        )
        bulk_update_with_history(
            changed_infusions,
            Infusion,
            [*_INFUSION_COMPARED, "version"],
            default_user=ctx.history_user,
            default_change_reason=ctx.correction_reason,
        )
        return {p.pk for p in patients} | {p.pk for p, _, _ in updates}

    return write


# --- labs.csv ------------------------------------------------------------------------------


def _lab_field_to_column(key: str) -> str:
    return key if key in ("analyte", "value", "unit") else "value"


# --- observations.csv ----------------------------------------------------------------------
# Streamed and set-based, as labs.csv: patients/bulk_observations.py.


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


# --- events.csv ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _EventKey:
    kind: str
    date: date
    detail: str


def _check_event_order(
    stored: set[tuple[int, str, date, str]],
    creates: list[tuple[tuple[int, str, date, str], Patient]],
    parsed: Mapping[tuple[int, str, date, str], tuple[Patient, int]],
    report: ImportReport,
) -> None:
    """The order rules of the event service (SPEC 2.4), against the store and earlier rows."""
    recorded: dict[int, list[_EventKey]] = {}
    for pid, kind, day_date, detail in stored:
        recorded.setdefault(pid, []).append(_EventKey(kind, day_date, detail))
    dead = {pid for (pid, kind, _d, _det), _p in creates if kind == EventKind.DEATH}
    last_obs = dict(
        Observation.objects.active()
        .filter(patient_id__in=dead)
        .values("patient_id")
        .annotate(last=Max("date"))
        .values_list("patient_id", "last")
    )
    last_lab = dict(
        LabResult.objects.active()
        .filter(patient_id__in=dead)
        .values("patient_id")
        .annotate(last=Max("collected_at"))
        .values_list("patient_id", "last")
    )
    last_override = dict(
        GradeOverride.objects.active()
        .filter(patient_id__in=dead)
        .values("patient_id")
        .annotate(last=Max("date"))
        .values_list("patient_id", "last")
    )
    tz = site_zone()
    for key, _patient in sorted(creates, key=lambda c: parsed[c[0]][1]):
        pid, kind, day_date, detail = key
        line = parsed[key][1]
        if any(e.line == line for e in report.errors):
            continue
        conflict = services.event_conflict(recorded.get(pid, []), kind=kind, on=day_date, detail=detail)
        if conflict is None and kind == EventKind.DEATH:
            later = [
                d
                for d in (
                    last_obs.get(pid),
                    last_override.get(pid),
                    last_lab.get(pid) and last_lab[pid].astimezone(tz).date(),
                )
                if d
            ]
            if later and max(later) > day_date:
                conflict = _("a death on %(date)s would come before data recorded on %(other)s") % {
                    "date": f"{day_date:%Y-%m-%d}",
                    "other": f"{max(later):%Y-%m-%d}",
                }
        if conflict is not None:
            report.errors.append(RowError(report.filename, line, "event", kind, conflict))
            continue
        recorded.setdefault(pid, []).append(_EventKey(kind, day_date, detail))


def _death_dates(patients: Mapping[str, Patient]) -> dict[int, tuple[date, str]]:
    """Each patient's recorded death: nothing dated after it is imported (SPEC 2.4)."""
    return {
        pid: (day_date, detail)
        for pid, day_date, detail in ClinicalEvent.objects.active()
        .filter(patient__in=list(patients.values()), kind=EventKind.DEATH)
        .values_list("patient_id", "date", "detail")
    }


def _plan_events(
    rows: list[_Row], header: set[str], report: ImportReport, ctx: _Context
) -> Callable[[], set[int]] | None:
    fn = report.filename
    patients = _patients_by_mrn((r.cells["mrn"] for r in rows), lock=not report.dry_run, scope=ctx.scope)
    parsed: dict[tuple[int, str, date, str], tuple[Patient, int]] = {}
    for row in rows:
        c = _Cells(row, fn, report.errors)
        patient = _unknown_mrn(c, patients, report)
        day_date = c.date("date", required=True)
        if patient is not None and day_date is not None:
            day = day_of_date(day_date, patient.infusion.infusion_date)
            if not MIN_DAY <= day <= MAX_DAY:
                c.error("date", _day_error(day, _("this date")))
            else:
                _refuse_future(c, "date", services.check_not_future_date, day_date)
        kind, detail = c.raw("event"), c.raw("detail")
        try:
            services.validate_event(kind, detail)
        except ValidationError as exc:
            for field_key, messages in exc.message_dict.items():
                for message in messages:
                    c.error("event" if field_key == "kind" else "detail", message)
        if c.bad or patient is None or day_date is None:
            continue
        key = (patient.pk, kind, day_date, detail)
        if key in parsed:
            report.skipped += 1
            continue
        parsed[key] = (patient, row.line)
    if report.errors:
        return None
    stored = set(
        ClinicalEvent.objects.active()
        .filter(patient__in=list(patients.values()))
        .values_list("patient_id", "kind", "date", "detail")
    )
    creates = [(key, patient) for key, (patient, _line) in parsed.items() if key not in stored]
    _check_event_order(stored, creates, parsed, report)
    if report.errors:
        return None
    report.skipped += len(parsed) - len(creates)
    report.created = len(creates)

    def write() -> set[int]:
        objs = [
            ClinicalEvent(
                patient=patient,
                kind=kind,
                date=day_date,
                detail=detail,
                source=ctx.source,
                entered_by=ctx.entered_by,
                entered_at=ctx.now,
            )
            for (_pid, kind, day_date, detail), patient in creates
        ]
        bulk_create_with_history(
            objs, ClinicalEvent, default_user=ctx.history_user, default_change_reason="imported"
        )
        return {patient.pk for _key, patient in creates}

    return write


_PLANNERS: dict[str, Planner] = {
    PATIENTS: _plan_patients,
    EVENTS: _plan_events,
}


def import_file(kind: str, path: str, **kwargs: Any) -> ImportReport:
    """Import one CSV file from disk (the management commands), read from the open file."""
    with open(path, "rb") as fh:
        return run_import(kind, fh, filename=kwargs.pop("filename", None) or path, **kwargs)
