"""Reads for the ward pages (SPEC 3.5, 8.1): constant query counts, no N+1.

Selectors take the user and an explicit ``today`` (the caller passes
``timezone.localdate()``); reminders depend on the date and are computed here
from the stored results and the pure ``scoring.rules.alerts.reminders`` rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, FilteredRelation, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crsrisk.accounts.roles import visible_patients
from patients.models import ClinicalEvent, EventKind, LabResult, Observation, Patient
from scoring.i18n import analyte_label, localize
from scoring.models import Alert, DailyAssessment, PatientSummary, PendingRecompute, ScoreModel
from scoring.rules import alerts as alert_rules
from scoring.rules.days import day_of, day_of_date, format_day
from scoring.rules.score import FactorResult, ScoreResult
from scoring.services import site_zone

WARD_FIRST_DAY = -30  # active from day −30, SPEC 8.1
WARD_LAST_DAY = 90  # to day +90 unless monitoring_end_day says otherwise, SPEC 8.1
BAND_RANK = {"high": 2, "intermediate": 1, "low": 0}
SEARCH_MAX_CHARS = 100


@dataclass(frozen=True)
class RunningDay:
    """A day's running score as the ward list shows it (from ``PatientSummary.recent_days``)."""

    day: int
    points: int
    max_points: int
    band: str
    band_final: bool
    provisional: bool


@dataclass(frozen=True)
class WardRow:
    """One line of the ward list, with everything it shows."""

    patient: WardPatient
    day: int
    summary: WardSummary | None
    running: RunningDay | None
    trend: str  # "up", "same", "down" or "" when there is no yesterday to compare with
    trend_delta: int | None
    sort_band: str
    sort_points: int
    alerts: list[Alert] = field(default_factory=list)
    reminders: list[str] = field(default_factory=list)

    @property
    def day_display(self) -> str:
        return format_day(self.day)

    @property
    def severe_observed(self) -> bool:
        return bool(self.summary and self.summary.severe_observed_day is not None)

    @property
    def max_grade_so_far(self) -> int | None:
        """The highest grade on any day so far; None when no day has been graded yet.

        The summary's ``max_crs_grade`` is the outcome over days 0…window; a severe day
        after the window must still show here, beside "severe CRS observed".
        """
        if self.summary is None:
            return None
        grades = [self.summary.max_crs_grade, self.summary.severe_observed_grade or 0]
        if self.summary.max_crs_day is None and not any(grades):
            return None
        return max(grades)

    @property
    def day7_reached(self) -> bool:
        return self.day >= 7


def ward_patients(
    user: AbstractBaseUser | AnonymousUser, *, today: date, query: str = ""
) -> QuerySet[Patient]:
    """Active patients of the user's teams: not dead, roughly days −30…+90 (refined in Python)."""
    dead = ClinicalEvent.objects.active().filter(patient=OuterRef("pk"), kind=EventKind.DEATH)
    qs = (
        visible_patients(user)
        .filter(infusion__isnull=False, infusion__infusion_date__lte=today - timedelta(days=WARD_FIRST_DAY))
        .filter(
            Q(infusion__infusion_date__gte=today - timedelta(days=WARD_LAST_DAY))
            | Q(monitoring_end_day__gt=WARD_LAST_DAY)
        )
        .filter(~Exists(dead))
    )
    query = (query or "").strip()[:SEARCH_MAX_CHARS]
    if query:
        qs = qs.filter(Q(mrn__icontains=query) | Q(name__icontains=query))
    return qs


def score_result_from_stored(factors: list[dict[str, Any]], *, model: str, day: int) -> ScoreResult:
    """Rebuild the rules' ScoreResult from a stored factor breakdown (for the reminder rule)."""
    results = tuple(
        FactorResult(
            code=f["code"],
            input=f["input"],
            label=f.get("label", ""),
            comparison=f["comparison"],
            cut=Decimal(f["cut"]),
            points_possible=f["points_possible"],
            points=f["points"],
            missing=f["missing"],
            value=None if f.get("value") is None else Decimal(f["value"]),
            comparator=f.get("comparator") or None,
            day=f.get("day"),
            collected_at=None,
            flags=tuple(f.get("flags", ())),
        )
        for f in factors
    )
    points = sum(f.points for f in results)
    max_points = points + sum(f.points_possible for f in results if f.missing)
    return ScoreResult(
        model=model,
        day=day,
        points=points,
        max_points=max_points,
        band="",
        band_final=False,
        complete=not any(f.missing for f in results),
        provisional=False,
        factors=results,
        landmark=True,
    )


def reminder_texts(reminders: list[alert_rules.Reminder]) -> list[str]:
    """The reminders' texts in the reader's language."""
    return [localize(r.message) for r in reminders]


def patient_reminders(
    patient: Patient,
    *,
    today_day: int,
    summary: PatientSummary | None,
    model: str,
    bcell_labs: list[LabResult],
    observations: list[Observation],
) -> list[str]:
    """Reminders due today for one patient, from its live B-cell labs and observations."""
    tz = site_zone()
    d0 = patient.infusion.infusion_date
    return due_reminders(
        today_day=today_day,
        summary=summary,
        model=model,
        bcell_days=[day_of(lab.collected_at, tz, d0) for lab in bcell_labs],
        observation_days=[day_of_date(o.date, d0) for o in observations],
    )


def due_reminders(
    *,
    today_day: int,
    summary: PatientSummary | WardSummary | None,
    model: str,
    bcell_days: list[int],
    observation_days: list[int],
) -> list[str]:
    """Reminders due today (SPEC 3.5), from the days of the B-cell counts and observations."""
    # The rule reads the day-7 factors only after the day-7 panel's reminder day.
    needs_day7 = summary is not None and today_day > alert_rules.DAY7_PANEL_REMIND_AFTER_DAY
    day7 = score_result_from_stored(summary.day7_factors, model=model, day=7) if needs_day7 else None
    due = alert_rules.reminders(
        today_day=today_day,
        day7=day7,
        bcell_days=bcell_days,
        observation_days=observation_days,
    )
    return reminder_texts(due)


def _as_of(rows: dict[int, RunningDay], day: int) -> RunningDay | None:
    """The running score as of ``day``: the last row on or before it (none before day 0)."""
    past = [d for d in rows if d <= day]
    return rows[max(past)] if day >= 0 and past else None


def _trend(rows: dict[int, RunningDay], today_day: int) -> tuple[str, int | None]:
    """Up, down or same since yesterday; "same" when nothing was entered since (SPEC 8.1)."""
    now, yesterday = _as_of(rows, today_day), _as_of(rows, today_day - 1)
    if now is None or yesterday is None:
        return "", None
    delta = now.points - yesterday.points
    return ("up" if delta > 0 else "down" if delta < 0 else "same"), delta


def _local_midnight(day: date) -> datetime:
    """The start of ``day`` in the site's zone."""
    return datetime(day.year, day.month, day.day, tzinfo=site_zone())


@dataclass(frozen=True, slots=True)
class WardPatient:
    """The patient as a ward row shows it (read as values, not as a model instance)."""

    pk: int
    mrn: str
    name: str
    synthetic: bool
    # Rows stored but results not yet recomputed (an import's recompute under way).
    updating: bool = False


@dataclass(frozen=True, slots=True)
class WardSummary:
    """The fields of the patient's stored summary the ward list shows, sorts by or reminds from."""

    day7_points: int
    day7_max_points: int
    day7_band: str
    day7_complete: bool
    day7_factors: list[dict[str, Any]]
    max_crs_grade: int
    max_crs_day: int | None
    severe_observed_day: int | None
    severe_observed_grade: int | None
    bcell_status: str
    last_data_day: int
    recent_days: list[dict[str, Any]]


_SUMMARY_FIELDS = tuple(f.name for f in fields(WardSummary))


def _running_days(
    summaries: dict[int, tuple[int, WardSummary]], *, model: ScoreModel
) -> dict[int, dict[int, RunningDay]]:
    """Each patient's running rows of today and yesterday, read from the stored summary.

    ``summaries`` maps each patient to today's day after infusion and its summary. The
    summary keeps the last two data days; a patient with data dated after today (a lab
    collected just past midnight) has its two days read from the day rows, in one query
    for all such patients.
    """
    out: dict[int, dict[int, RunningDay]] = {}
    ahead: dict[int, int] = {}
    for pid, (day, summary) in summaries.items():
        if day < summary.last_data_day:
            ahead[pid] = day
        else:
            out[pid] = {d["day"]: RunningDay(**d) for d in summary.recent_days}
    if ahead:
        wanted = Q()
        for pid, day in ahead.items():
            wanted |= Q(patient_id=pid, day__in=[day - 1, day])
        for pid, *values in DailyAssessment.objects.filter(wanted, model=model).values_list(
            "patient_id", "day", "points", "max_points", "band", "band_final", "provisional"
        ):
            out.setdefault(pid, {})[values[0]] = RunningDay(*values)
    return out


def ward_rows(
    user: AbstractBaseUser | AnonymousUser, *, today: date, query: str = ""
) -> tuple[ScoreModel, list[WardRow]]:
    """The ward list (SPEC 8.1), sorted by risk, in three queries whatever the number of patients.

    The active model; the patients with their infusion date, their summary under that model
    (the stored running score of their last two data days, the day-7 result, grade and B-cell
    status) and the two facts the date-dependent reminders need (a B-cell count in the last
    days, an observation today), in one query of values; and their open alerts. No list of
    ids is sent back to the database and no day row is read (unless data lie after today).
    """
    model = ScoreModel.objects.active()
    visible = ward_patients(user, today=today, query=query)
    bcell_window = (
        _local_midnight(today - timedelta(days=alert_rules.BCELL_OVERDUE_AFTER_DAYS - 1)),
        _local_midnight(today + timedelta(days=1)),
    )
    found = visible.annotate(
        active_summary=FilteredRelation("summaries", condition=Q(summaries__model=model)),
        recent_bcell=Exists(
            LabResult.objects.active().filter(
                patient=OuterRef("pk"),
                analyte="bcell",
                collected_at__gte=bcell_window[0],
                collected_at__lt=bcell_window[1],
            )
        ),
        observed_today=Exists(Observation.objects.active().filter(patient=OuterRef("pk"), date=today)),
        updating=Exists(PendingRecompute.objects.filter(patient=OuterRef("pk"))),
    ).values_list(
        "pk",
        "mrn",
        "name",
        "synthetic",
        "monitoring_end_day",
        "infusion__infusion_date",
        "recent_bcell",
        "observed_today",
        "updating",
        "active_summary__pk",
        *(f"active_summary__{name}" for name in _SUMMARY_FIELDS),
    )
    listed: list[tuple[WardPatient, int, WardSummary | None, bool, bool]] = []
    for pk, mrn, name, synthetic, end_day, d0, bcell, observed, updating, summary_pk, *summary in found:
        day = day_of_date(today, d0)
        if not WARD_FIRST_DAY <= day <= (WARD_LAST_DAY if end_day is None else end_day):
            continue
        listed.append(
            (
                WardPatient(pk, mrn, name, synthetic, updating),
                day,
                None if summary_pk is None else WardSummary(*summary),
                bcell,
                observed,
            )
        )
    alerts: dict[int, list[Alert]] = {}
    for alert in Alert.objects.filter(
        patient__in=visible.values("pk"), resolved_at__isnull=True, acknowledged_at__isnull=True
    ).order_by("patient_id", "day", "kind"):
        alerts.setdefault(alert.patient_id, []).append(alert)
    running_days = _running_days(
        {p.pk: (day, summary) for p, day, summary, _, _ in listed if summary is not None}, model=model
    )
    rows = []
    for p, day, summary, bcell, observed in listed:
        by_day = running_days.get(p.pk, {})
        running = _as_of(by_day, day)
        trend, delta = _trend(by_day, day)
        if day >= 7 and summary is not None:
            sort_band, sort_points = summary.day7_band, summary.day7_points
        elif running is not None:
            sort_band, sort_points = running.band, running.points
        else:
            sort_band, sort_points = "low", 0
        rows.append(
            WardRow(
                patient=p,
                day=day,
                summary=summary,
                running=running,
                trend=trend,
                trend_delta=delta,
                sort_band=sort_band,
                sort_points=sort_points,
                alerts=alerts.get(p.pk, []),
                # The rule asks whether a B-cell day lies in its window and whether today has an
                # observation: the query answered both, so today stands for the day found.
                reminders=due_reminders(
                    today_day=day,
                    summary=summary,
                    model=model.name,
                    bcell_days=[day] if bcell else [],
                    observation_days=[day] if observed else [],
                ),
            )
        )
    rows.sort(
        key=lambda r: (not r.severe_observed, -BAND_RANK.get(r.sort_band, 0), -r.sort_points, r.patient.mrn)
    )
    return model, rows


# --- one patient's record ------------------------------------------------------------------


@dataclass(frozen=True)
class PatientRecord:
    """The clinical rows shown on the patient page, voided ones included (shown as voided)."""

    labs: list[LabResult]
    observations: list[Observation]
    events: list[ClinicalEvent]
    overrides: list[Any]

    @property
    def live_labs(self) -> list[LabResult]:
        return [lab for lab in self.labs if lab.voided_at is None]

    @property
    def live_observations(self) -> list[Observation]:
        return [o for o in self.observations if o.voided_at is None]


def patient_record(patient: Patient) -> PatientRecord:
    """Labs, observations, events and grade overrides of one patient, newest first."""
    from patients.models import GradeOverride

    return PatientRecord(
        labs=list(
            LabResult.objects.filter(patient=patient)
            .select_related("entered_by")
            .order_by("-collected_at", "analyte", "-id")
        ),
        observations=list(
            Observation.objects.filter(patient=patient).select_related("entered_by").order_by("-date", "-id")
        ),
        events=list(ClinicalEvent.objects.filter(patient=patient).order_by("-date", "-id")),
        overrides=list(GradeOverride.objects.active().filter(patient=patient).order_by("-date")),
    )


@dataclass(frozen=True)
class HistoryChange:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    """One change of one clinical row: who, when, what, old → new, why."""

    when: Any
    who: str
    what: str
    action: str
    changes: list[HistoryChange]
    reason: str


HISTORY_SKIPPED_FIELDS = {"id", "patient", "version", "created_at", "entered_at", "flags"}
# Field names as the forms say them (Django's default names, such as "tmax c", are not words).
HISTORY_FIELD_LABELS = {
    "mrn": gettext_lazy("MRN"),
    "name": gettext_lazy("Name"),
    "sex": gettext_lazy("Sex"),
    "birth_date": gettext_lazy("Birth date"),
    "care_team": gettext_lazy("Care team"),
    "diagnosis": gettext_lazy("Diagnosis"),
    "product": gettext_lazy("CAR-T product"),
    "infusion_date": gettext_lazy("Infusion date (day 0)"),
    "lymphodepletion_start": gettext_lazy("Lymphodepletion start"),
    "baseline_mrd_pct": gettext_lazy("Baseline MRD (%)"),
    "post_ld_mrd_pct": gettext_lazy("Post-lymphodepletion MRD (%)"),
    "monitoring_end_day": gettext_lazy("End of monitoring (day)"),
    "synthetic": gettext_lazy("synthetic"),
    "analyte": gettext_lazy("Analyte"),
    "value": gettext_lazy("Value"),
    "comparator": gettext_lazy("Comparator"),
    "collected_at": gettext_lazy("Collection time"),
    "entered_value": gettext_lazy("Value as entered"),
    "entered_unit": gettext_lazy("Unit as entered"),
    "loinc": gettext_lazy("LOINC"),
    "date": gettext_lazy("Date"),
    "tmax_c": gettext_lazy("Highest temperature (°C)"),
    "hypotension": gettext_lazy("Hypotension"),
    "oxygen": gettext_lazy("Oxygen"),
    "antipyretic": gettext_lazy("Antipyretic given"),
    "tocilizumab": gettext_lazy("Tocilizumab given"),
    "corticosteroids": gettext_lazy("Corticosteroids given"),
    "kind": gettext_lazy("Event"),
    "detail": gettext_lazy("Detail"),
    "grade": gettext_lazy("Grade"),
    "reason": gettext_lazy("Reason"),
    "note": gettext_lazy("Note"),
    "source": gettext_lazy("Source"),
    "entered_by": gettext_lazy("Entered by"),
    "voided_at": gettext_lazy("Voided at"),
    "voided_by": gettext_lazy("Voided by"),
    "void_reason": gettext_lazy("Reason for the void"),
}
# The change reasons the services write themselves, in words; a user's reason follows the colon.
HISTORY_REASONS = {
    "registered": gettext_lazy("registered"),
    "entered": gettext_lazy("entered"),
    "imported": gettext_lazy("imported"),
}
HISTORY_REASON_PREFIXES = {
    "voided: ": gettext_lazy("voided: %(reason)s"),
    "replaced: ": gettext_lazy("replaced: %(reason)s"),
    "corrected by import: ": gettext_lazy("corrected by import: %(reason)s"),
}


def _history_reason(reason: str) -> str:
    """A stored change reason in the reader's language; a user's own words stay as typed."""
    if reason in HISTORY_REASONS:
        return str(HISTORY_REASONS[reason])
    for prefix, template in HISTORY_REASON_PREFIXES.items():
        if reason.startswith(prefix):
            return str(template) % {"reason": reason[len(prefix) :]}
    return reason


HISTORY_LIMIT = 1000


def _history_value(value: Any, names: dict[str, dict[Any, str]], field_name: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, datetime):
        # Site time, as everywhere else: a UTC time can show the previous calendar day (SPEC 1).
        return value.astimezone(site_zone()).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    if field_name in names:
        return names[field_name].get(value, str(value))
    return str(value)


def _describe(model_name: str, record: Any, patient: Patient) -> str:
    if model_name == "Patient":
        return _("Patient %(mrn)s") % {"mrn": patient.mrn}
    if model_name == "Infusion":
        return _("Infusion")
    if model_name == "LabResult":
        label = analyte_label(record.analyte)
        return _("Lab %(analyte)s collected %(when)s") % {
            "analyte": label,
            "when": record.collected_at.astimezone(site_zone()).strftime("%Y-%m-%d %H:%M"),
        }
    if model_name == "Observation":
        return _("Observation of %(date)s") % {"date": record.date.isoformat()}
    if model_name == "ClinicalEvent":
        return _("Event %(kind)s on %(date)s") % {
            "kind": record.get_kind_display(),
            "date": record.date.isoformat(),
        }
    return _("CRS grade override of %(date)s") % {"date": record.date.isoformat()}


def record_history(patient: Patient) -> list[HistoryEntry]:
    """The change history of a patient's clinical rows, newest first, in a constant number of queries."""
    from django.contrib.auth import get_user_model

    from patients.models import CareTeam, GradeOverride, Infusion

    sources: list[tuple[Any, dict[str, Any]]] = [
        (Patient, {"id": patient.pk}),
        (Infusion, {"patient_id": patient.pk}),
        (LabResult, {"patient_id": patient.pk}),
        (Observation, {"patient_id": patient.pk}),
        (ClinicalEvent, {"patient_id": patient.pk}),
        (GradeOverride, {"patient_id": patient.pk}),
    ]
    names: dict[str, dict[Any, str]] = {
        "care_team": dict(CareTeam.objects.values_list("id", "name")),
    }
    for model, _filters in sources:
        for f in model._meta.concrete_fields:
            if f.choices:  # codes such as one_vasopressor shown as their (translated) labels
                names.setdefault(f.name, {k: str(v) for k, v in f.flatchoices})
    raw: list[tuple[Any, Any, list[tuple[str, str, Any, Any]]]] = []
    user_ids: set[int] = set()
    for model, filters in sources:
        fields = [f for f in model._meta.concrete_fields if f.name not in HISTORY_SKIPPED_FIELDS]
        # The newest records when there are too many, then in time order to diff each row.
        newest = (
            model.history.filter(**filters)
            .select_related("history_user")
            .order_by("-history_date", "-history_id")[:HISTORY_LIMIT]
        )
        previous: dict[int, Any] = {}
        for rec in reversed(list(newest)):
            before = previous.get(rec.id)
            diffs = []
            for f in fields:
                new = getattr(rec, f.attname)
                old = None if before is None else getattr(before, f.attname)
                # A created row lists what it holds; 0 is a value (B-cell aplasia, grade 0), not blank.
                if before is None and (new is None or new == "" or new is False):
                    continue
                if before is not None and old == new:
                    continue
                diffs.append((f.name, str(HISTORY_FIELD_LABELS.get(f.name, f.verbose_name)), old, new))
                if f.name in ("entered_by", "voided_by", "created_by") and new is not None:
                    user_ids.add(new)
            previous[rec.id] = rec
            raw.append((model, rec, diffs))
    users = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("id", "username"))
    names["entered_by"] = names["voided_by"] = users
    actions = {"+": _("created"), "~": _("changed"), "-": _("deleted")}
    entries = [
        HistoryEntry(
            when=rec.history_date,
            who=rec.history_user.get_username() if rec.history_user else _("system"),
            what=_describe(model.__name__, rec, patient),
            action=actions.get(rec.history_type, rec.history_type),
            changes=[
                HistoryChange(
                    field=label,
                    old="" if rec.history_type == "+" else _history_value(old, names, name),
                    new=_history_value(new, names, name),
                )
                for name, label, old, new in diffs
            ],
            reason=_history_reason(rec.history_change_reason or ""),
        )
        for model, rec, diffs in raw
    ]
    entries.sort(key=lambda e: e.when, reverse=True)
    return entries[:HISTORY_LIMIT]
