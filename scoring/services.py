"""Recompute and store derived results; activate score models (SPEC 4, 5).

Every clinical write calls :func:`recompute_patients` inside its own
``transaction.atomic`` block, so a reader never sees labs newer than the
scores derived from them. A bulk write calls it once for all affected patients.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from patients.models import (
    ClinicalEvent,
    GradeOverride,
    LabResult,
    Observation,
    Patient,
    SiteParameters,
)
from scoring.assess import Assessment, PatientInputs, Summary, assess_patient
from scoring.models import Alert, DailyAssessment, ModelStatus, PatientSummary, ScoreModel
from scoring.rules import types as rt
from scoring.rules.days import day_of, day_of_date

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


def site_zone() -> ZoneInfo:
    """The site time zone, which decides calendar days (SPEC 1)."""
    return ZoneInfo(settings.TIME_ZONE)


def site_params(params: SiteParameters | None = None) -> rt.SiteParams:
    """The rules' view of the site parameters."""
    p = params or SiteParameters.load()
    return rt.SiteParams(
        bcell_threshold=p.bcell_threshold,
        regeneration_window_days=p.regeneration_window_days,
        confirm_regeneration=p.confirm_regeneration,
        crs_outcome_window=p.crs_outcome_window,
    )


def _clinical_prefetch() -> list[Prefetch]:
    return [
        Prefetch(
            "labs", queryset=LabResult.objects.active().order_by("collected_at", "id"), to_attr="live_labs"
        ),
        Prefetch(
            "observations",
            queryset=Observation.objects.active().order_by("date"),
            to_attr="live_observations",
        ),
        Prefetch("events", queryset=ClinicalEvent.objects.active().order_by("date"), to_attr="live_events"),
        Prefetch("grade_overrides", queryset=GradeOverride.objects.active(), to_attr="live_overrides"),
    ]


def patients_with_inputs(patient_ids: Iterable[int]) -> list[Patient]:
    """Patients with their infusion and live clinical rows, in a constant number of queries."""
    return list(
        Patient.objects.filter(pk__in=list(patient_ids), infusion__isnull=False)
        .select_related("infusion")
        .prefetch_related(*_clinical_prefetch())
    )


def patient_inputs(patient: Patient, tz: ZoneInfo | None = None) -> PatientInputs:
    """Translate one patient's stored rows into the rules' plain inputs."""
    tz = tz or site_zone()
    inf = patient.infusion
    d0 = inf.infusion_date
    labs = tuple(
        rt.Lab(
            analyte=lab.analyte,
            day=day_of(lab.collected_at, tz, d0),
            collected_at=lab.collected_at,
            value=Decimal(lab.value),
            comparator=lab.comparator or None,
        )
        for lab in patient.live_labs  # type: ignore[attr-defined]  # Prefetch to_attr
    )
    observations = tuple(
        rt.Observation(
            day=day_of_date(obs.date, d0),
            tmax_c=obs.tmax_c,
            hypotension=obs.hypotension,
            oxygen=obs.oxygen,
            antipyretic=obs.antipyretic,
            tocilizumab=obs.tocilizumab,
            corticosteroids=obs.corticosteroids,
        )
        for obs in patient.live_observations  # type: ignore[attr-defined]  # Prefetch to_attr
    )
    events = tuple(
        rt.Event(kind=e.kind, day=day_of_date(e.date, d0), detail=e.detail)
        for e in patient.live_events  # type: ignore[attr-defined]  # Prefetch to_attr
    )
    overrides = tuple(
        rt.Override(day=day_of_date(o.date, d0), grade=o.grade)
        for o in patient.live_overrides  # type: ignore[attr-defined]  # Prefetch to_attr
    )
    ld = inf.lymphodepletion_start
    return PatientInputs(
        infusion_date=d0,
        baseline_mrd_pct=inf.baseline_mrd_pct,
        post_ld_mrd_pct=inf.post_ld_mrd_pct,
        lymphodepletion_day=None if ld is None else day_of_date(ld, d0),
        labs=labs,
        observations=observations,
        overrides=overrides,
        events=events,
    )


def assess_from_scratch(patient: Patient, model: ScoreModel | None = None) -> Assessment:
    """Recompute one patient's results from the stored rows, without storing them."""
    model = model or ScoreModel.objects.active()
    (fresh,) = patients_with_inputs([patient.pk])
    return assess_patient(patient_inputs(fresh), model.to_spec(), site_params())


def _chunks(ids: list[int], size: int) -> Iterator[list[int]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


@transaction.atomic
def recompute_patients(
    patient_ids: Iterable[int], *, model: ScoreModel | None = None, now: datetime | None = None
) -> int:
    """Recompute and store the derived results of these patients under ``model``.

    Only rows that changed are written. Alerts follow the active model only.
    Returns the number of patients recomputed.
    """
    model = model or ScoreModel.objects.active()
    spec = model.to_spec()
    params = site_params()
    tz = site_zone()
    now = now or timezone.now()
    ids = sorted(set(patient_ids))
    update_alerts = model.status == ModelStatus.ACTIVE
    done = 0
    for chunk in _chunks(ids, RECOMPUTE_CHUNK):
        assessments = {
            p.pk: assess_patient(patient_inputs(p, tz), spec, params) for p in patients_with_inputs(chunk)
        }
        _store_rows(assessments, model)
        _store_summaries(assessments, model, now)
        if update_alerts:
            _store_alerts(assessments, chunk, now)
        done += len(assessments)
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


def request_recompute(patient_ids: Iterable[int]) -> None:
    """Recompute these patients now, or at the end of the enclosing ``recompute_once`` block."""
    pending = _pending_recompute.get()
    if pending is None:
        recompute_patients(patient_ids)
    else:
        pending.update(patient_ids)


def recompute_all(*, model: ScoreModel | None = None) -> int:
    """Recompute every patient (site parameter change, model activation, ``recompute``)."""
    ids = list(Patient.objects.values_list("pk", flat=True))
    return recompute_patients(ids, model=model)


def _shallow(obj: Any) -> dict[str, Any]:
    """A dataclass's fields, without ``asdict``'s deep copy of the factor lists."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _row_values(row: Any) -> dict[str, Any]:
    values = _shallow(row)
    values.pop("day")
    return values


def _store_rows(assessments: dict[int, Assessment], model: ScoreModel) -> None:
    existing = {
        (a.patient_id, a.day): a
        for a in DailyAssessment.objects.filter(patient_id__in=assessments.keys(), model=model)
    }
    to_create, to_update = [], []
    wanted = set()
    for pid, assessment in assessments.items():
        for row in assessment.rows:
            key = (pid, row.day)
            wanted.add(key)
            values = _row_values(row)
            current = existing.get(key)
            if current is None:
                to_create.append(DailyAssessment(patient_id=pid, model=model, day=row.day, **values))
            elif any(_differs(getattr(current, f), v) for f, v in values.items()):
                for f, v in values.items():
                    setattr(current, f, v)
                to_update.append(current)
    stale = [a.pk for key, a in existing.items() if key not in wanted]
    if stale:
        DailyAssessment.objects.filter(pk__in=stale).delete()
    DailyAssessment.objects.bulk_update(to_update, _ROW_FIELDS, batch_size=500)
    DailyAssessment.objects.bulk_create(to_create, batch_size=500)


def _differs(stored: Any, new: Any) -> bool:
    if isinstance(new, Decimal) and stored is not None:
        return Decimal(stored) != new
    return bool(stored != new)


def _store_summaries(assessments: dict[int, Assessment], model: ScoreModel, now: datetime) -> None:
    existing = {
        s.patient_id: s for s in PatientSummary.objects.filter(patient_id__in=assessments.keys(), model=model)
    }
    to_create, to_update = [], []
    for pid, assessment in assessments.items():
        values = _shallow(assessment.summary)
        current = existing.get(pid)
        if current is None:
            to_create.append(PatientSummary(patient_id=pid, model=model, computed_at=now, **values))
        elif any(_differs(getattr(current, f), v) for f, v in values.items()):
            for f, v in values.items():
                setattr(current, f, v)
            current.computed_at = now
            to_update.append(current)
    summary_fields = [f.name for f in fields(Summary)] + ["computed_at"]
    PatientSummary.objects.bulk_update(to_update, summary_fields, batch_size=500)
    PatientSummary.objects.bulk_create(to_create, batch_size=500)


def _store_alerts(assessments: dict[int, Assessment], patient_ids: list[int], now: datetime) -> None:
    """Raise new alerts once, resolve those whose condition is gone, reopen returning ones."""
    existing = {(a.patient_id, a.kind, a.day): a for a in Alert.objects.filter(patient_id__in=patient_ids)}
    wanted = {}
    for pid, assessment in assessments.items():
        for cond in assessment.alerts:
            wanted[(pid, cond.kind, cond.day)] = cond
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


@transaction.atomic
def score_model_activate(*, model: ScoreModel, user: Any = None) -> int:
    """Make ``model`` the one active version and recompute every patient under it."""
    current = ScoreModel.objects.select_for_update().filter(status=ModelStatus.ACTIVE).exclude(pk=model.pk)
    for old in current:
        old.status = ModelStatus.RETIRED
        old._change_reason = f"retired by activation of {model.name}"  # type: ignore[attr-defined]
        old.save()
    model.status = ModelStatus.ACTIVE
    model.activated_at = timezone.now()
    model._change_reason = "activated"  # type: ignore[attr-defined]  # simple-history reason
    model.save()
    return recompute_all(model=model)
