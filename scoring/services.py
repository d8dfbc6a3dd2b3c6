"""Recompute and store derived results; activate score models (SPEC 4, 5).

Every clinical write calls :func:`recompute_patients` inside its own
``transaction.atomic`` block, so a reader never sees labs newer than the
scores derived from them. A bulk write calls it once for all affected patients.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import fields, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from crsrisk import store
from crsrisk.transactions import hand_over_write_lock
from crsrisk.writes import ConflictError, require_reason, save_with_history, site_zone
from patients.models import (
    ClinicalEvent,
    GradeOverride,
    Infusion,
    LabResult,
    Observation,
    Patient,
    SiteParameters,
    Voidable,
)
from scoring.assess import (
    BCELL_ANALYTE,
    Assessment,
    PatientInputs,
    Summary,
    assess_patient,
    lab_windows,
    windowed_labs_suffice,
)
from scoring.i18n import error_text
from scoring.models import (
    Alert,
    DailyAssessment,
    ModelStatus,
    PatientSummary,
    PendingRecompute,
    Provenance,
    ScoreModel,
)
from scoring.rules import score
from scoring.rules import types as rt
from scoring.rules.alerts import DAY7_HIGH, AlertCondition
from scoring.rules.days import day_of, day_of_date
from scoring.rules.units import ANALYTES, Analyte, format_decimal

RECOMPUTE_CHUNK = 200
_ROW_FIELDS = [
    "date",
    "points",
    "max_points",
    "band",
    "band_final",
    "provisional",
    "factors",
    "crs_grade",
    "crs_computed_grade",
    "crs_review",
    "crs_overridden",
    "fever_waived",
    "tocilizumab",
    "corticosteroids",
    "antipyretic",
    "bcell_status",
    "first_regeneration_day",
    "m_easix",
]


def site_params(params: SiteParameters | None = None) -> rt.SiteParams:
    """The rules' view of the site parameters."""
    p = params or SiteParameters.load()
    return rt.SiteParams(
        bcell_threshold=p.bcell_threshold,
        regeneration_window_days=p.regeneration_window_days,
        confirm_regeneration=p.confirm_regeneration,
        crs_outcome_window=p.crs_outcome_window,
    )


# The columns each input is built from, read as plain rows (no model objects): loading is
# most of a recompute's time, and model instances cost several times a tuple.
_LAB_COLUMNS = ("patient_id", "analyte", "collected_at", "value", "comparator")
_OBSERVATION_COLUMNS = (
    "patient_id",
    "date",
    "tmax_c",
    "hypotension",
    "oxygen",
    "antipyretic",
    "tocilizumab",
    "corticosteroids",
)
_EVENT_COLUMNS = ("patient_id", "kind", "date", "detail")
_OVERRIDE_COLUMNS = ("patient_id", "date", "grade")
_INFUSION_COLUMNS = (
    "patient_id",
    "infusion_date",
    "lymphodepletion_start",
    "baseline_mrd_pct",
    "post_ld_mrd_pct",
    "baseline_mrd_comparator",
    "post_ld_mrd_comparator",
)


def _by_patient(rows: Iterable[tuple]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(row)
    return out


def _live_rows(
    model: type[Voidable], columns: tuple[str, ...], where: str, params: Sequence[Any], order: tuple[str, ...]
) -> dict[int, list[tuple]]:
    """The live rows of ``model`` matching ``where`` as plain tuples of ``columns``, by patient.

    Plain SQL: the recompute reads these on every write, and building and compiling the
    ORM's statement cost more than running it. Values are converted as the ORM converts them.
    """
    table, voided_at, *order_by = store.quoted(model, "voided_at", *order)
    select = ", ".join(store.quoted(model, *columns)[1:])
    sql = (
        f"SELECT {select} FROM {table} WHERE {voided_at} IS NULL AND ({where}) "  # noqa: S608
        f"ORDER BY {', '.join(order_by)}"
    )
    return _by_patient(store.fetch(sql, params, store.converters(model, columns)))


def _of_patients(model: type[Voidable], ids: list[int]) -> tuple[str, list[int]]:
    """``patient_id IN (ids)`` as SQL and its parameters."""
    (_table, patient_id) = store.quoted(model, "patient_id")
    return f"{patient_id} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _lab_rows(wanted: list[tuple[str, list[Any]]]) -> dict[int, list[tuple]]:
    """Live labs matching any of ``wanted`` (SQL, parameters), by patient, in the order every
    recompute reads them."""
    where = " OR ".join(f"({sql})" for sql, _params in wanted)
    params = [p for _sql, ps in wanted for p in ps]
    return _live_rows(LabResult, _LAB_COLUMNS, where, params, ("collected_at", "id"))


def _utc_midnight(infusion_date: date, day: int) -> datetime:
    return datetime.combine(infusion_date + timedelta(days=day), time.min, tzinfo=UTC)


def _windowed_labs(pid: int, infusion_date: date, from_day: int, ld_day: int | None) -> tuple[str, list[Any]]:
    """The labs of one patient that an assessment from ``from_day`` reads (``lab_windows``),
    as SQL and its parameters.

    A window of days is widened by a day on each side in UTC, which holds every lab of
    those local days whatever the site's offset (−12 h…+14 h): more labs than needed
    give the same results.
    """
    _table, patient_id, analyte, collected_at = store.quoted(
        LabResult, "patient_id", "analyte", "collected_at"
    )
    wanted, params = [f"{analyte} = %s"], [BCELL_ANALYTE]
    for first, last in lab_windows(from_day, ld_day):
        window = f"{collected_at} >= %s"
        params.append(store.db_value(LabResult, "collected_at", _utc_midnight(infusion_date, first - 1)))
        if last is not None:
            window += f" AND {collected_at} < %s"
            params.append(store.db_value(LabResult, "collected_at", _utc_midnight(infusion_date, last + 2)))
        wanted.append(f"({window})")
    return f"{patient_id} = %s AND ({' OR '.join(wanted)})", [pid, *params]


def _infusion_rows(ids: list[int]) -> dict[int, tuple]:
    return {
        row[0]: row for row in Infusion.objects.filter(patient_id__in=ids).values_list(*_INFUSION_COLUMNS)
    }


def _infusion_row(infusion: Infusion) -> tuple:
    """An infusion read already, as ``_infusion_rows`` gives it."""
    return tuple(getattr(infusion, column) for column in _INFUSION_COLUMNS)


def load_inputs(patient_ids: Iterable[int], tz: ZoneInfo | None = None) -> dict[int, PatientInputs]:
    """The rules' plain inputs of these patients (those with an infusion), in five queries."""
    return _load_inputs(_infusion_rows(list(patient_ids)), tz or site_zone())


def _load_inputs(
    infusions: dict[int, tuple], tz: ZoneInfo, from_days: Mapping[int, int] | None = None
) -> dict[int, PatientInputs]:
    """The plain inputs of the patients of these infusion rows.

    ``from_days`` maps a patient to the first day an incremental recompute stores: only
    the labs that assessment reads are loaded (``scoring.assess.lab_windows``), and every
    lab when those turn out not to suffice (one more query).
    """
    from_days = from_days or {}
    ids = list(infusions)
    whole = [pid for pid in ids if pid not in from_days]
    wanted = [_of_patients(LabResult, whole)] if whole else []
    for pid, from_day in from_days.items():
        _pid, d0, ld, *_rest = infusions[pid]
        wanted.append(_windowed_labs(pid, d0, from_day, None if ld is None else day_of_date(ld, d0)))
    labs = _lab_rows(wanted) if wanted else {}
    by_date = ("date", "id")
    observations, events, overrides = (
        _live_rows(model, columns, *_of_patients(model, ids), by_date) if ids else {}
        for model, columns in (
            (Observation, _OBSERVATION_COLUMNS),
            (ClinicalEvent, _EVENT_COLUMNS),
            (GradeOverride, _OVERRIDE_COLUMNS),
        )
    )
    inputs = {}
    for pid, (_pid, d0, ld, baseline_mrd, post_ld_mrd, baseline_cmp, post_ld_cmp) in infusions.items():
        inputs[pid] = PatientInputs(
            infusion_date=d0,
            baseline_mrd_pct=baseline_mrd,
            post_ld_mrd_pct=post_ld_mrd,
            baseline_mrd_comparator=baseline_cmp,
            post_ld_mrd_comparator=post_ld_cmp,
            lymphodepletion_day=None if ld is None else day_of_date(ld, d0),
            labs=_plain_labs(labs.get(pid, ()), tz, d0),
            observations=tuple(
                rt.Observation(
                    day=day_of_date(obs_date, d0),
                    tmax_c=tmax_c,
                    hypotension=hypotension,
                    oxygen=oxygen,
                    antipyretic=antipyretic,
                    tocilizumab=tocilizumab,
                    corticosteroids=corticosteroids,
                )
                for _p, obs_date, tmax_c, hypotension, oxygen, antipyretic, tocilizumab, corticosteroids in (
                    observations.get(pid, ())
                )
            ),
            overrides=tuple(
                rt.Override(day=day_of_date(o_date, d0), grade=grade)
                for _p, o_date, grade in overrides.get(pid, ())
            ),
            events=tuple(
                rt.Event(kind=kind, day=day_of_date(e_date, d0), detail=detail)
                for _p, kind, e_date, detail in events.get(pid, ())
            ),
        )
    short = [pid for pid, from_day in from_days.items() if not windowed_labs_suffice(inputs[pid], from_day)]
    if short:
        every = _lab_rows([_of_patients(LabResult, short)])
        for pid in short:
            inputs[pid] = replace(
                inputs[pid], labs=_plain_labs(every.get(pid, ()), tz, inputs[pid].infusion_date)
            )
    return inputs


def _plain_labs(rows: Iterable[tuple], tz: ZoneInfo, d0: date) -> tuple[rt.Lab, ...]:
    return tuple(
        rt.Lab(
            analyte=analyte,
            day=day_of(collected_at, tz, d0),
            collected_at=collected_at,
            value=Decimal(value),
            comparator=comparator or None,
        )
        for _p, analyte, collected_at, value, comparator in rows
    )


def patients_with_inputs(patient_ids: Iterable[int]) -> list[Patient]:
    """Patients (with an infusion) and their plain inputs, in a constant number of queries.

    Each patient carries its inputs for :func:`patient_inputs`.
    """
    tz = site_zone()
    patients = list(
        Patient.objects.filter(pk__in=list(patient_ids), infusion__isnull=False).select_related("infusion")
    )
    inputs = load_inputs([p.pk for p in patients], tz)
    for p in patients:
        p.plain_inputs = inputs[p.pk]  # type: ignore[attr-defined]  # read by patient_inputs
    return patients


def patient_inputs(patient: Patient, tz: ZoneInfo | None = None) -> PatientInputs:
    """One patient's plain inputs (loaded by :func:`patients_with_inputs`, else read now)."""
    loaded = getattr(patient, "plain_inputs", None)
    if loaded is not None:
        return loaded  # type: ignore[no-any-return]
    return load_inputs([patient.pk], tz)[patient.pk]


def assess_from_scratch(patient: Patient, model: ScoreModel | None = None) -> Assessment:
    """Recompute one patient's results from the stored rows, without storing them."""
    model = model or ScoreModel.objects.active()
    return assess_patient(load_inputs([patient.pk])[patient.pk], model.to_spec(), site_params())


def _chunks(ids: list[int], size: int) -> Iterator[list[int]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


# No savepoint of its own: inside a write's transaction (the usual caller), a failed recompute
# fails the write, and two statements fewer per write.
@transaction.atomic(savepoint=False)
def recompute_patients(
    patient_ids: Iterable[int],
    *,
    model: ScoreModel | None = None,
    now: datetime | None = None,
    since: Mapping[int, datetime] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    infusions: Mapping[int, Infusion] | None = None,
    site: SiteParameters | None = None,
) -> int:
    """Recompute and store the derived results of these patients under ``model``.

    Only rows that changed are written. ``since`` maps a patient to the collection time
    of the earliest lab a write changed: only the day rows from that day on can change
    (a lab counts on its own day and the next, B-cell status runs forward), so only
    those are computed and compared, from only the labs they and the summary read
    (``scoring.assess.lab_windows``); the summary and alerts are always whole.
    Alerts follow the active model only. With no ``model``, a version being activated
    (:func:`score_model_activate`) is recomputed as well, so that entries made while it
    runs end up in its results. ``infusions`` are the infusions of some of these patients
    as read under their lock in this transaction (a lab write does not change them): they
    are not read again, nor are the site parameters ``site`` read in this transaction.
    Returns the number of patients recomputed.
    ``on_progress(done, total)`` is called after each chunk of patients under ``model``.
    """
    ids = sorted(set(patient_ids))
    now = now or timezone.now()
    params = site_params(site)
    if model is None:
        model, activating = ScoreModel.objects.recompute_targets(now)
        for other in activating:
            _recompute_under(ids, other, now, since, params, infusions)
    return _recompute_under(ids, model, now, since, params, infusions, on_progress)


def _recompute_under(
    ids: list[int],
    model: ScoreModel,
    now: datetime,
    since: Mapping[int, datetime] | None,
    params: rt.SiteParams,
    known: Mapping[int, Infusion] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    spec = model.to_spec()
    tz = site_zone()
    update_alerts = model.status == ModelStatus.ACTIVE
    done = 0
    for chunk in _chunks(ids, RECOMPUTE_CHUNK):
        infusions = {pid: _infusion_row(known[pid]) for pid in chunk if known and pid in known}
        if len(infusions) < len(chunk):
            infusions.update(_infusion_rows([pid for pid in chunk if pid not in infusions]))
        # Days past the stored last data day have no row yet: they are computed too.
        summaries = _stored_summaries(chunk, model) if since else None
        from_days = {}
        for pid, row in infusions.items():
            if since is not None and summaries is not None and pid in since:
                stored = summaries.get(pid)
                last = -1 if stored is None else stored[1][_LAST_DATA_DAY]
                from_day = day_of(since[pid], tz, row[1])
                from_days[pid] = max(0, min(from_day, last + 1))
        inputs = _load_inputs(infusions, tz, from_days)
        assessments = {
            pid: assess_patient(patient_inputs_, spec, params, from_day=from_days.get(pid, 0))
            for pid, patient_inputs_ in inputs.items()
        }
        _store_rows(assessments, model)
        _store_summaries(assessments, model, now, summaries)
        if update_alerts:
            _store_alerts(assessments, chunk, now)
        done += len(assessments)
        if on_progress is not None:
            on_progress(done, len(ids))
    return done


_pending_recompute: ContextVar[set[int] | None] = ContextVar("pending_recompute", default=None)


@contextmanager
def recompute_once() -> Iterator[set[int]]:
    """Batch the recomputes of the writes inside the block: each patient once, at the end.

    The block runs in one transaction and the recompute happens inside it, so
    the contract holds: a reader never sees the writes without their results.
    A nested block joins the outer one.
    """
    if _pending_recompute.get() is not None:
        yield _pending_recompute.get() or set()
        return
    pending: set[int] = set()
    token = _pending_recompute.set(pending)
    try:
        with transaction.atomic():
            yield pending
            _pending_recompute.reset(token)
            token = None
            if pending:
                recompute_patients(pending)
    finally:
        if token is not None:
            _pending_recompute.reset(token)


def request_recompute(
    patient_ids: Iterable[int],
    *,
    since: datetime | None = None,
    infusions: Mapping[int, Infusion] | None = None,
    params: SiteParameters | None = None,
) -> None:
    """Recompute these patients now, or at the end of the enclosing ``recompute_once`` block.

    ``since`` is the collection time of the earliest lab the write changed, when the write
    changed only labs: the recompute then starts from its day (see ``recompute_patients``).
    A ``recompute_once`` block recomputes its patients whole. ``infusions`` and ``params``
    (the site parameters): see ``recompute_patients``.
    """
    pending = _pending_recompute.get()
    if pending is None:
        ids = list(patient_ids)
        recompute_patients(
            ids,
            since=None if since is None else dict.fromkeys(ids, since),
            infusions=infusions,
            site=params,
        )
    else:
        pending.update(patient_ids)


def recompute_all(*, model: ScoreModel | None = None) -> int:
    """Recompute every patient (site parameter change, model activation, ``recompute``)."""
    ids = list(Patient.objects.values_list("pk", flat=True))
    return recompute_patients(ids, model=model)


def recompute_all_in_chunks(on_progress: Callable[[int, int], None] | None = None) -> int:
    """Recompute every patient after a site parameter change, a chunk of patients at a time.

    Each chunk locks its patients as a write does and commits on its own, as an activation's
    chunks do: an entry on these patients waits for the chunk, or the chunk reads its
    committed rows; an entry after the chunk is computed under the new parameters already.
    """
    return recompute_in_chunks(list(Patient.objects.order_by("pk").values_list("pk", flat=True)), on_progress)


def recompute_in_chunks(
    ids: list[int],
    on_progress: Callable[[int, int], None] | None = None,
    *,
    model: ScoreModel | None = None,
    in_chunk: Callable[[list[int]], None] | None = None,
) -> int:
    """Recompute these patients (under ``model``), ``ACTIVATION_CHUNK`` of them per commit.

    Each chunk locks its patients as a write does, so an entry on them waits for the chunk
    or the chunk reads the entry's committed rows, and commits on its own with what
    ``in_chunk(chunk)`` adds; ``on_progress(done, total)`` is called after each commit.
    Returns the number of patients recomputed.
    """
    total, done = len(ids), 0
    for chunk in _chunks(ids, ACTIVATION_CHUNK):
        hand_over_write_lock()  # SQLite: a bedside entry waiting since the last commit goes first
        with transaction.atomic():
            locked = list(
                Patient.objects.select_for_update().filter(pk__in=chunk).values_list("pk", flat=True)
            )
            done += recompute_patients(locked, model=model) if locked else 0
            if in_chunk is not None:
                in_chunk(chunk)
        if on_progress is not None:
            on_progress(done, total)
    return done


def recompute_later(ids: Iterable[int], *, now: datetime | None = None) -> None:
    """Mark these patients' results as lagging their rows, in the transaction that writes the rows.

    ``recompute_pending`` recomputes them after the write has committed, a chunk per commit.
    """
    marked_at = now or timezone.now()
    PendingRecompute.objects.bulk_create(
        [PendingRecompute(patient_id=pid, marked_at=marked_at) for pid in sorted(set(ids))],
        ignore_conflicts=True,
        batch_size=1000,
    )


def recompute_pending(
    ids: Iterable[int] | None = None, *, on_progress: Callable[[int, int], None] | None = None
) -> int:
    """Recompute the marked patients (of these, or all of them), a chunk of patients per commit.

    Each chunk locks its patients as a write does, recomputes them from their stored rows and
    clears their marks in one transaction, so no commit holds SQLite's write lock for long and
    a process stopped half-way leaves only marks, which the next call finishes. An entry on a
    patient meanwhile recomputes that patient in its own transaction as always; the chunk
    then reads its committed rows. Returns the number of patients recomputed.
    """
    marked = PendingRecompute.objects.order_by("patient_id")
    if ids is not None:
        marked = marked.filter(patient_id__in=sorted(set(ids)))
    return recompute_in_chunks(
        list(marked.values_list("patient_id", flat=True)),
        on_progress,
        in_chunk=lambda chunk: PendingRecompute.objects.filter(patient_id__in=chunk).delete(),
    )


def _shallow(obj: Any) -> dict[str, Any]:
    """A dataclass's fields, without ``asdict``'s deep copy of the factor lists."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


_ROW_KEY = ["patient_id", "model_id", "day"]
_SUMMARY_FIELDS = [f.name for f in fields(Summary)]
_LAST_DATA_DAY = _SUMMARY_FIELDS.index("last_data_day")


def _store_rows(assessments: dict[int, Assessment], model: ScoreModel) -> None:
    """Write the day rows that changed: new ones inserted, changed ones updated, gone ones deleted.

    Set-based through :mod:`crsrisk.store` (``COPY`` on PostgreSQL), not ``bulk_create``.
    """
    stored = DailyAssessment.objects.filter(patient_id__in=assessments.keys(), model=model)
    rows_from = min((a.rows_from for a in assessments.values()), default=0)
    if rows_from > 0:
        # An incremental recompute (one patient): the earlier days cannot have changed.
        stored = stored.filter(day__gte=rows_from)
    existing: dict[tuple[int, int], tuple[int, tuple[Any, ...]]] = {}
    for pk, pid, day, *values in stored.values_list("pk", "patient_id", "day", *_ROW_FIELDS):
        if day >= assessments[pid].rows_from:
            existing[(pid, day)] = (pk, tuple(values))
    to_create, to_update = [], []
    wanted = set()
    for pid, assessment in assessments.items():
        for row in assessment.rows:
            key = (pid, row.day)
            wanted.add(key)
            values = tuple(getattr(row, f) for f in _ROW_FIELDS)
            current = existing.get(key)
            if current is None:
                to_create.append((pid, model.pk, row.day, *values))
            elif any(_differs(old, new) for old, new in zip(current[1], values, strict=True)):
                to_update.append((current[0], *values))
    stale = [pk for key, (pk, _values) in existing.items() if key not in wanted]
    if stale:
        DailyAssessment.objects.filter(pk__in=stale).delete()
    store.update_rows(DailyAssessment, _ROW_FIELDS, to_update)
    store.insert_rows(DailyAssessment, _ROW_KEY + _ROW_FIELDS, to_create)


def _differs(stored: Any, new: Any) -> bool:
    if isinstance(new, Decimal) and stored is not None:
        return Decimal(stored) != new
    return bool(stored != new)


_StoredSummaries = dict[int, tuple[int, tuple[Any, ...]]]


def _stored_summaries(patient_ids: Sequence[int], model: ScoreModel) -> _StoredSummaries:
    """The stored summaries of these patients under ``model``: patient -> (pk, field values)."""
    stored = PatientSummary.objects.filter(patient_id__in=patient_ids, model=model)
    rows = stored.values_list("pk", "patient_id", *_SUMMARY_FIELDS)
    return {pid: (pk, tuple(values)) for pk, pid, *values in rows}


def _store_summaries(
    assessments: dict[int, Assessment],
    model: ScoreModel,
    now: datetime,
    existing: _StoredSummaries | None = None,
) -> None:
    """Write the summaries that changed (with ``computed_at``), set-based as the day rows.

    ``existing``: the stored summaries of these patients (``_stored_summaries``), when the
    caller has read them already.
    """
    if existing is None:
        existing = _stored_summaries(list(assessments), model)
    to_create, to_update = [], []
    for pid, assessment in assessments.items():
        values = tuple(getattr(assessment.summary, f) for f in _SUMMARY_FIELDS)
        current = existing.get(pid)
        if current is None:
            to_create.append((pid, model.pk, *values, now))
        elif any(_differs(old, new) for old, new in zip(current[1], values, strict=True)):
            to_update.append((current[0], *values, now))
    store.update_rows(PatientSummary, [*_SUMMARY_FIELDS, "computed_at"], to_update)
    store.insert_rows(PatientSummary, ["patient_id", "model_id", *_SUMMARY_FIELDS, "computed_at"], to_create)


def _store_alerts(assessments: dict[int, Assessment], patient_ids: list[int], now: datetime) -> None:
    """Raise new alerts once, resolve those whose condition is gone, reopen returning ones."""
    existing = {(a.patient_id, a.kind, a.day): a for a in Alert.objects.filter(patient_id__in=patient_ids)}
    wanted = {}
    for pid, assessment in assessments.items():
        for cond in assessment.alerts:
            wanted[(pid, cond.kind, cond.day)] = cond
    _apply_alerts(wanted, existing, now)


def _apply_alerts(
    wanted: dict[tuple[int, str, int], AlertCondition],
    existing: dict[tuple[int, str, int], Alert],
    now: datetime,
) -> None:
    to_create, to_update = [], []
    for key, cond in wanted.items():
        alert = existing.get(key)
        message, params = str(cond.message), dict(cond.params)
        if alert is None:
            to_create.append(
                Alert(
                    patient_id=key[0],
                    kind=cond.kind,
                    day=cond.day,
                    message=message,
                    params=params,
                    raised_at=now,
                )
            )
        elif alert.resolved_at is not None or alert.message != message or alert.params != params:
            alert.resolved_at = None
            alert.message, alert.params = message, params
            to_update.append(alert)
    for key, alert in existing.items():
        if key not in wanted and alert.resolved_at is None:
            alert.resolved_at = now
            to_update.append(alert)
    # Alerts keep a history of their own, written in bulk with the rows.
    if to_create:
        bulk_create_with_history(to_create, Alert, default_change_reason="raised by recompute")
    if to_update:
        bulk_update_with_history(
            to_update, Alert, ["resolved_at", "message", "params"], default_change_reason="recompute"
        )


def unresolved_alert_keys(patient: Patient) -> set[tuple[str, int]]:
    """The keys of the patient's unresolved alerts (the SPEC 4 alert invariant)."""
    return set(Alert.objects.filter(patient=patient, resolved_at__isnull=True).values_list("kind", "day"))


ACTIVATION_CHUNK = 200  # patients per committed chunk of an activation


def score_model_activate(
    *,
    model: ScoreModel,
    user: Any = None,
    expected_revision: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    resume: bool = False,
) -> int:
    """Make ``model`` the one active version, with every patient's results computed under it.

    ``expected_revision`` is the revision the hematologist reviewed: a version changed
    since is refused. The definition is checked as the editor checks it, so a version
    written around the editor (an unreachable band, say) cannot become active.

    The results are computed in chunks of patients, each committed on its own, while the
    old version stays active; ``on_progress(done, total)`` is called after each chunk.
    Meanwhile the version is frozen, no other activation may start, and every write
    recomputes its patient under both versions. The active version changes in one short
    transaction at the end, once every patient has results under the new one; the day-7
    alerts (not tied to a version) are swapped there too. A failure deletes the partial
    results and leaves the old version active. Returns the number of patients.

    A worker killed mid-way leaves the mark and the committed chunks: ``resume`` (the job
    delivered again) clears them and starts over, and a mark older than
    ``ACTIVATION_STALE_AFTER`` is ignored, whatever the version.
    """
    started = _activation_start(model, expected_revision, resume=resume)
    try:
        ids = list(Patient.objects.filter(infusion__isnull=False).order_by("pk").values_list("pk", flat=True))
        if on_progress is not None:
            on_progress(0, len(ids))
        recompute_in_chunks(ids, on_progress, model=started)
        return _activation_finish(started, user=user)
    except BaseException:
        with transaction.atomic():
            DailyAssessment.objects.filter(model=started).delete()
            PatientSummary.objects.filter(model=started).delete()
            ScoreModel.objects.filter(pk=started.pk).update(activation_started_at=None)
        raise


@transaction.atomic
def _activation_start(
    model: ScoreModel, expected_revision: int | None, *, resume: bool = False
) -> ScoreModel:
    """Check the version and mark it as being activated (refused while another runs).

    A running activation is one marked less than ``ACTIVATION_STALE_AFTER`` ago; with
    ``resume`` this version's own mark (its interrupted run) does not count.
    """
    locked: ScoreModel = ScoreModel.objects.select_for_update().get(pk=model.pk)
    _check_revision(locked, expected_revision)
    score_model_spec_check(locked.spec, name=locked.name)
    if locked.status == ModelStatus.ACTIVE:
        raise ValidationError(
            _("%(name)s is already the active model.") % {"name": locked.name}, code="active"
        )
    from crsrisk.jobs.models import Job

    if Job.objects.filter(kind=Job.Kind.SITE_PARAMETERS, status=Job.Status.RUNNING).exists():
        raise ValidationError(
            _("The site parameters are being changed: activate the model when that has finished."),
            code="site_parameters_running",
        )
    now = timezone.now()
    running_qs = ScoreModel.objects.select_for_update().being_activated(now)
    if resume:
        running_qs = running_qs.exclude(pk=locked.pk)
    running = running_qs.first()
    if running is not None:
        raise ValidationError(
            _("%(name)s is being activated: wait until it finishes, then try again.")
            % {"name": running.name},
            code="activation_running",
        )
    # Results left by an interrupted activation of this version are a mix: start afresh.
    DailyAssessment.objects.filter(model=locked).delete()
    PatientSummary.objects.filter(model=locked).delete()
    ScoreModel.objects.filter(pk=locked.pk).update(activation_started_at=now)
    locked.activation_started_at = now
    return locked


@transaction.atomic
def _activation_finish(model: ScoreModel, *, user: Any) -> int:
    """The short switch: retire the old version, activate the new one, swap the day-7 alerts."""
    model = ScoreModel.objects.select_for_update().get(pk=model.pk)
    now = timezone.now()
    # Patients registered between the last chunk and this lock, if any.
    missing = list(
        Patient.objects.filter(infusion__isnull=False)
        .exclude(summaries__model=model)
        .values_list("pk", flat=True)
    )
    if missing:
        recompute_patients(missing, model=model, now=now)
    current = ScoreModel.objects.select_for_update().filter(status=ModelStatus.ACTIVE).exclude(pk=model.pk)
    for old in current:
        old.status = ModelStatus.RETIRED
        _save_model(old, user=user, reason=f"retired by activation of {model.name}")
    model.status = ModelStatus.ACTIVE
    model.activated_at = now
    model.activation_started_at = None
    _save_model(model, user=user, reason="activated")
    _swap_day7_alerts(model, now)
    return PatientSummary.objects.filter(model=model).count()


def _swap_day7_alerts(model: ScoreModel, now: datetime) -> None:
    """Day-7 alerts as the new version's stored summaries say (the other kinds do not depend on it)."""
    high = PatientSummary.objects.filter(model=model, day7_band=score.BAND_HIGH)
    conditions = {
        pid: AlertCondition(
            DAY7_HIGH, score.LANDMARK_DAY, {"points": p, "max_points": m, "model": model.name}
        )
        for pid, p, m in high.values_list("patient_id", "day7_points", "day7_max_points")
    }
    existing = {(a.patient_id, a.kind, a.day): a for a in Alert.objects.filter(kind=DAY7_HIGH)}
    wanted = {(pid, cond.kind, cond.day): cond for pid, cond in conditions.items()}
    _apply_alerts(wanted, existing, now)


# --- score model versions: create, edit, retire (SPEC 5) ------------------------------------

SCORE_INPUTS = (  # the seven prespecified inputs of Ke et al. 2025 (SPEC 3.2)
    score.BASELINE_MRD_INPUT,
    score.POST_LD_MRD_INPUT,
    Analyte.ANC.value,
    Analyte.CRP.value,
    Analyte.FERRITIN.value,
    Analyte.IL6.value,
    Analyte.APTT.value,
)
MAX_FACTOR_POINTS = 100  # a typo guard; published integer scores use single digits
MRD_MAX_PCT = Decimal(100)
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DRAFT_PROVENANCES = (Provenance.EDITED, Provenance.PUBLISHED, Provenance.FITTED)


def _save_model(model: ScoreModel, *, user: Any, reason: str) -> None:
    """Save with the change history's user and reason, bumping the lock revision."""
    model.revision += 1
    save_with_history(model, user=user, reason=reason)


def _check_revision(model: ScoreModel, expected_revision: int | None) -> None:
    if expected_revision is not None and model.revision != expected_revision:
        raise ConflictError(
            _(
                "Score model %(name)s was changed by someone else since you opened it (you edited "
                "revision %(mine)s, it is now at revision %(now)s). Nothing was saved: reload it, "
                "review the change, and try again."
            )
            % {"name": model.name, "mine": expected_revision, "now": model.revision},
            code="conflict",
        )


def _factor_key(code: str, field: str) -> str:
    """The error key of one factor field; the editor form names its fields the same way."""
    return f"{code}-{field}"


def score_model_spec_check(spec: dict[str, Any], *, name: str) -> dict[str, Any]:
    """Validate a model definition through the pure rules; return it normalised.

    Errors are keyed by field (``<factor code>-cut``, ``high_from``, ...) so that a form
    can show each one next to its input.
    """
    errors: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    factors = spec.get("factors")
    if not isinstance(factors, list) or not factors:
        raise ValidationError({"factors": _("A score model needs at least one factor.")})
    parsed: list[score.FactorSpec] = []
    for raw in factors:
        code = str(raw.get("code", ""))
        if not code:
            add("factors", _("Every factor needs a code."))
            continue
        if raw.get("input") not in SCORE_INPUTS:
            add(
                _factor_key(code, "input"),
                _("Factor %(code)s: the input %(input)s is not one of the seven inputs of the score.")
                % {"code": code, "input": raw.get("input")},
            )
            continue
        try:
            cut = Decimal(str(raw.get("cut", "")).strip())
        except InvalidOperation:
            add(
                _factor_key(code, "cut"),
                _("Factor %(code)s: the cut-point %(cut)s is not a number.")
                % {"code": code, "cut": raw.get("cut")},
            )
            continue
        points = raw.get("points")
        if isinstance(points, bool) or not isinstance(points, int):
            add(_factor_key(code, "points"), _("Points must be a whole number."))
            continue
        try:
            factor = score.FactorSpec(
                code=code,
                input=raw["input"],
                comparison=raw.get("comparison"),
                cut=cut,
                points=points,
                label=str(raw.get("label", "")),
                rationale=str(raw.get("rationale", "")),
            )
        except score.ModelSpecError as exc:
            add(_factor_key(code, exc.field), error_text(exc))
            continue
        if cut < 0:
            add(_factor_key(code, "cut"), _("The cut-point must be 0 or more."))
        elif factor.is_mrd and cut > MRD_MAX_PCT:
            add(_factor_key(code, "cut"), _("An MRD cut-point is a percentage: 0 to 100."))
        if points > MAX_FACTOR_POINTS:
            add(
                _factor_key(code, "points"),
                _("Points must be %(max)s or fewer.") % {"max": MAX_FACTOR_POINTS},
            )
        parsed.append(factor)
    if errors:
        raise ValidationError(errors)
    for key in ("intermediate_from", "high_from"):
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            add(key, _("Band thresholds are whole numbers of points."))
    if errors:
        raise ValidationError(errors)
    try:
        model = score.ModelSpec(
            name=name,
            factors=tuple(parsed),
            intermediate_from=spec["intermediate_from"],
            high_from=spec["high_from"],
        )
    except score.ModelSpecError as exc:
        band_messages = {
            "intermediate_from": _("The intermediate band must start at 0 points or more."),
            "high_from": _("The high band must start at or above the intermediate band."),
        }
        field = exc.field if exc.field in band_messages else "factors"
        raise ValidationError({field: band_messages.get(field, error_text(exc))}) from None
    if model.high_from > model.total_points:
        raise ValidationError(
            {
                "high_from": _(
                    "The high band starts at %(high)s points, but the factors add up to %(total)s at "
                    "most: no patient could reach it."
                )
                % {"high": model.high_from, "total": model.total_points}
            }
        )
    return score.model_spec_to_dict(model)


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not MODEL_NAME_RE.match(name):
        raise ValidationError(
            {
                "name": _(
                    "A model name is 1–64 characters: letters, digits, '.', '-' and '_', "
                    "starting with a letter or digit (for example site-v1)."
                )
            }
        )
    if ScoreModel.objects.filter(name=name).exists():
        raise ValidationError({"name": _("A score model named %(name)s exists already.") % {"name": name}})
    return name


def _check_provenance(provenance: str, citation: str) -> None:
    if provenance not in DRAFT_PROVENANCES:
        raise ValidationError(
            {
                "provenance": _(
                    "Provenance %(value)s is not accepted for a new version; accepted: edited, "
                    "published, fitted ('provisional' is the shipped model's only)."
                )
                % {"value": provenance}
            }
        )
    if provenance == Provenance.PUBLISHED and not citation.strip():
        raise ValidationError(
            {"citation": _("A published model needs its citation (authors, journal, year, DOI).")}
        )


@transaction.atomic
def score_model_create_draft(
    *,
    user: Any,
    source: ScoreModel | None,
    name: str,
    provenance: str,
    citation: str = "",
    description: str = "",
    spec: dict[str, Any] | None = None,
    fit_report: dict[str, Any] | None = None,
) -> ScoreModel:
    """Create a draft version, a copy of ``source``'s definition unless ``spec`` is given."""
    name = _check_name(name)
    _check_provenance(provenance, citation)
    if spec is None:
        if source is None:
            raise ValidationError({"spec": _("A new version needs a source model or a definition.")})
        spec = source.spec
    clean = score_model_spec_check(dict(spec), name=name)
    model = ScoreModel(
        name=name,
        version=(source.version + 1) if source is not None else 1,
        revision=0,  # _save_model makes it 1
        provenance=provenance,
        citation=citation.strip(),
        description=description.strip(),
        status=ModelStatus.DRAFT,
        spec=clean,
        fit_report=fit_report,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        derived_from=source,
    )
    reason = f"draft created from {source.name}" if source is not None else "draft created"
    try:
        with transaction.atomic():
            _save_model(model, user=user, reason=reason)
    except IntegrityError:  # the same name taken by a concurrent request
        raise ValidationError(
            {"name": _("A score model named %(name)s exists already.") % {"name": name}}
        ) from None
    return model


@transaction.atomic
def score_model_update(
    *,
    user: Any,
    model: ScoreModel,
    expected_revision: int | None,
    reason: str,
    spec: dict[str, Any] | None = None,
    provenance: str | None = None,
    citation: str | None = None,
    description: str | None = None,
) -> ScoreModel:
    """Edit a draft: its factors, bands, provenance, citation or description (audited)."""
    reason = require_reason(reason, _("change a score model"))
    locked: ScoreModel = ScoreModel.objects.select_for_update().get(pk=model.pk)
    _check_revision(locked, expected_revision)
    if locked.activation_started_at is not None:
        raise ValidationError(
            _("Score model %(name)s is being activated and is frozen meanwhile.") % {"name": locked.name},
            code="frozen",
        )
    if locked.status != ModelStatus.DRAFT:
        raise ValidationError(
            _(
                "Score model %(name)s is %(status)s and frozen: only drafts can be edited. "
                "Create a new version from it instead."
            )
            % {"name": locked.name, "status": locked.get_status_display()},
            code="frozen",
        )
    new_provenance = locked.provenance if provenance is None else provenance
    new_citation = locked.citation if citation is None else citation.strip()
    if new_provenance != locked.provenance or new_citation != locked.citation:
        _check_provenance(new_provenance, new_citation)
    if spec is not None:
        checked = _labels_follow_cuts(score_model_spec_check(dict(spec), name=locked.name), locked.spec)
        if new_provenance == Provenance.FITTED and _scoring_terms(checked) != _scoring_terms(locked.spec):
            # The fit report describes the fitted points; once they change, the version is edited.
            new_provenance = Provenance.EDITED
        locked.spec = checked
    locked.provenance = new_provenance
    locked.citation = new_citation
    if description is not None:
        locked.description = description.strip()
    _save_model(locked, user=user, reason=reason)
    return locked


_COMPARISON_SIGNS = {">=": "≥", ">": ">", "<": "<", "<=": "≤"}
_INPUT_NAMES = {score.BASELINE_MRD_INPUT: "Baseline MRD", score.POST_LD_MRD_INPUT: "Post-lymphodepletion MRD"}


def factor_label(input_code: str, comparison: str, cut: Decimal) -> str:
    """A factor's label written from its rule, e.g. "IL-6 ≥ 500 pg/mL" (stored, so English)."""
    if input_code in _INPUT_NAMES:
        name, unit = _INPUT_NAMES[input_code], "%"
    else:
        spec = ANALYTES[input_code]
        name, unit = spec.label, spec.canonical_unit.replace("10^9/L", "×10^9/L")
    return f"{name} {_COMPARISON_SIGNS.get(comparison, comparison)} {format_decimal(cut)} {unit}"


def _labels_follow_cuts(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """A label left as it was follows a changed comparison or cut-point; a typed one is kept."""
    before = {f["code"]: f for f in old.get("factors", [])}
    factors = []
    for f in new["factors"]:
        was = before.get(f["code"])
        rule_changed = was is not None and (
            f["comparison"] != was["comparison"] or Decimal(str(f["cut"])) != Decimal(str(was["cut"]))
        )
        if rule_changed and f.get("label", "") == was.get("label", ""):
            f = {**f, "label": factor_label(f["input"], f["comparison"], Decimal(str(f["cut"])))}
        factors.append(f)
    return {**new, "factors": factors}


def _scoring_terms(spec: dict[str, Any]) -> set[tuple[str, str, Decimal, int]]:
    """Each factor's code, comparison, cut-point and points (the bands left out)."""
    return {(f["code"], f["comparison"], Decimal(str(f["cut"])), int(f["points"])) for f in spec["factors"]}


@transaction.atomic
def score_model_retire(
    *, user: Any, model: ScoreModel, reason: str, expected_revision: int | None = None
) -> ScoreModel:
    """Retire a draft (or re-confirm nothing): the active version is retired only by activating another."""
    reason = require_reason(reason, _("retire a score model"))
    locked: ScoreModel = ScoreModel.objects.select_for_update().get(pk=model.pk)
    _check_revision(locked, expected_revision)
    if locked.status == ModelStatus.ACTIVE:
        raise ValidationError(
            _("%(name)s is the active model; activate another version first (exactly one is always active).")
            % {"name": locked.name},
            code="active",
        )
    if locked.status == ModelStatus.RETIRED:
        raise ValidationError(_("%(name)s is already retired.") % {"name": locked.name}, code="retired")
    if locked.activation_started_at is not None:
        raise ValidationError(
            _("Score model %(name)s is being activated and is frozen meanwhile.") % {"name": locked.name},
            code="frozen",
        )
    locked.status = ModelStatus.RETIRED
    _save_model(locked, user=user, reason=f"retired: {reason}")
    return locked
