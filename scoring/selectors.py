"""Reads of the stored results for the patient page and the model pages (SPEC 3, 5, 8.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from crsrisk.accounts.roles import visible_patients
from patients.models import Patient, SiteParameters
from scoring.i18n import analyte_label, localize
from scoring.models import Alert, DailyAssessment, PatientSummary, PendingRecompute, ScoreModel
from scoring.rules import astct, bcell, measix, score
from scoring.rules.days import day_of_date, format_day
from scoring.rules.units import ANALYTES
from scoring.services import patient_inputs, patients_with_inputs, site_zone
from scoring.shipped import shipped_text

MRD_UNIT = "%"
PROVISIONAL_MODEL_NAME = "provisional-v0"


def input_label(code: str) -> str:
    """The display name of a factor input."""
    if code == score.BASELINE_MRD_INPUT:
        return _("Baseline MRD")
    if code == score.POST_LD_MRD_INPUT:
        return _("Post-lymphodepletion MRD")
    return analyte_label(code)


def input_unit(code: str) -> str:
    if code in score.MRD_INPUTS:
        return MRD_UNIT
    return ANALYTES[code].canonical_unit if code in ANALYTES else ""


def flag_text(flag: str) -> str:
    """Explain a factor flag in words."""
    texts = {
        score.FLAG_FROM_DAY_6: _("from day 6 (no day-7 value)"),
        score.FLAG_FROM_DAY_8: _("from day 8 (no day-6 or day-7 value)"),
        score.FLAG_AFTER_TOCILIZUMAB: _("drawn after tocilizumab: IL-6 reads higher and CRP lower"),
        score.FLAG_AFTER_CORTICOSTEROIDS: _("drawn after corticosteroids: the ANC reads higher"),
        score.FLAG_CENSORED_UNDECIDED: _("censored value cannot decide this factor: counted as missing"),
    }
    if flag in texts:
        return texts[flag]
    if flag.startswith("from_day_"):
        return _("from day %(day)s") % {"day": flag.removeprefix("from_day_")}
    return flag


def _num(text: str | None) -> str:
    if text is None:
        return ""
    value = Decimal(text).normalize()
    out = format(value, "f")
    return "0" if out in ("-0", "0") else out


@dataclass(frozen=True)
class FactorView:
    """One factor of a score breakdown, ready to show."""

    code: str
    label: str
    input: str
    value: str
    day: str
    cut: str
    points: int
    points_possible: int
    missing: bool
    flags: list[str]


def factor_views(factors: list[dict[str, Any]]) -> list[FactorView]:
    """The stored breakdown, with units; a missing input is shown as missing, never 0."""
    out = []
    for f in factors:
        unit = input_unit(f["input"])
        value = (
            "" if f.get("value") is None else f"{f.get('comparator') or ''}{_num(f['value'])} {unit}".strip()
        )
        out.append(
            FactorView(
                code=f["code"],
                label=f.get("label") or f["code"],
                input=input_label(f["input"]),
                value=value,
                day="" if f.get("day") is None else format_day(f["day"]),
                cut=f"{f['comparison']} {_num(f['cut'])} {unit}".strip(),
                points=f["points"],
                points_possible=f["points_possible"],
                missing=f["missing"],
                flags=[flag_text(x) for x in f.get("flags", [])],
            )
        )
    return out


@dataclass
class Timeline:
    """Everything the patient page shows about the derived results."""

    model: ScoreModel
    params: SiteParameters
    summary: PatientSummary | None
    rows: list[DailyAssessment]
    today_day: int
    running: DailyAssessment | None
    day7_factors: list[FactorView]
    running_factors: list[FactorView]
    alerts: list[Alert]
    caveats: dict[str, str] = field(default_factory=dict)
    # Each graded day's reasons, in the reader's language (SPEC 3.1): day → texts.
    grade_reasons: dict[int, list[str]] = field(default_factory=dict)
    last_data_day: int | None = None
    infusion_date: date = date.min
    # An import stored rows whose recompute has not reached this patient yet (as the ward list).
    updating: bool = False

    @property
    def graded_by_date(self) -> dict[date, dict[str, Any]]:
        """The observation table's grade column: each graded date → its stored grade and reasons."""
        return {
            r.date: {"grade": r.crs_grade, "why": "; ".join(self.grade_reasons.get(r.day, []))}
            for r in self.rows
            if r.crs_grade is not None
        }

    @property
    def running_is_today(self) -> bool:
        """True when the running score's day is today's day (data entered up to today)."""
        return self.running is not None and self.running.day == self.today_day

    @property
    def show_aplasia_caveat(self) -> bool:
        """The aplasia caveat speaks only beside a status of aplasia (or no sample yet)."""
        status = self.summary.bcell_status if self.summary is not None else bcell.NOT_ASSESSED
        return status in (bcell.APLASIA, bcell.APLASIA_NOT_ACHIEVED, bcell.NOT_ASSESSED)

    @property
    def open_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.resolved_at is None and a.acknowledged_at is None]

    @property
    def day7_missing(self) -> list[str]:
        return [f.input for f in self.day7_factors if f.missing]

    @property
    def is_provisional_model(self) -> bool:
        return self.model.provenance == "provisional"

    @property
    def severe_observed(self) -> bool:
        return self.summary is not None and self.summary.severe_observed_day is not None

    @property
    def day7_pending(self) -> bool:
        """Before day 6 no day-7 lab can exist yet: the landmark score is not a prediction yet."""
        stored = self.summary.day7_factors if self.summary is not None else []
        lab_factors = [f for f in stored if not f["input"].endswith("_mrd_pct")]
        return self.today_day < 6 and all(f["missing"] for f in lab_factors)

    @property
    def review_days(self) -> list[str]:
        return [format_day(r.day) for r in self.rows if r.crs_review]

    @property
    def m_easix_pre_ld_log2(self) -> float | None:
        if self.summary is None or self.summary.m_easix_pre_ld is None:
            return None
        value = Decimal(self.summary.m_easix_pre_ld)
        return None if value <= 0 else round(float(value.ln() / Decimal(2).ln()), 2)


def timeline(patient: Patient, *, today: date) -> Timeline:
    """Stored results of one patient under the active model, with the alerts."""
    model = ScoreModel.objects.active()
    rows = list(DailyAssessment.objects.filter(patient=patient, model=model).order_by("day"))
    summary = PatientSummary.objects.filter(patient=patient, model=model).first()
    today_day = day_of_date(today, patient.infusion.infusion_date)
    past = [r for r in rows if r.day <= today_day]
    running = past[-1] if past and today_day >= 0 else None
    alerts = list(
        Alert.objects.filter(patient=patient).select_related("acknowledged_by").order_by("-day", "kind")
    )
    # The reasons are a pure function of the stored inputs: read them from the rules rather
    # than store a second copy of every day's grade (SPEC 3.1, 4).
    (fresh,) = patients_with_inputs([patient.pk])
    inputs = patient_inputs(fresh)
    grade_reasons = {
        g.day: [localize(r) for r in g.reasons]
        for g in astct.grade_days(inputs.observations, inputs.overrides)
    }
    return Timeline(
        model=model,
        params=SiteParameters.load(),
        summary=summary,
        rows=rows,
        today_day=today_day,
        running=running,
        day7_factors=factor_views(summary.day7_factors) if summary else [],
        running_factors=factor_views(running.factors) if running else [],
        alerts=alerts,
        caveats={
            "provisional": _(score.MODEL_CAVEAT_PROVISIONAL),
            "trend": _(score.TREND_CAVEAT),
            "review": _(astct.REVIEW_MESSAGE),
            "aplasia": _(bcell.APLASIA_CAVEAT),
            "early_regeneration": _(bcell.EARLY_REGENERATION_EVIDENCE),
            "measix_adult": _(measix.ADULT_CAVEAT),
            "measix_daily": _(measix.DAILY_CAVEAT),
            "approximate": _(measix.APPROXIMATE_TIMING_LABEL),
        },
        grade_reasons=grade_reasons,
        last_data_day=summary.last_data_day if summary is not None else None,
        infusion_date=patient.infusion.infusion_date,
        updating=PendingRecompute.objects.filter(patient=patient).exists(),
    )


def score_models() -> list[ScoreModel]:
    """Every score model version, the active one first."""
    models = ScoreModel.objects.select_related("derived_from")
    return sorted(models, key=lambda m: (m.status != "active", m.status, m.name))


def _rule_text(factor: dict[str, Any]) -> str:
    return f"{factor['comparison']} {_num(str(factor['cut']))} {input_unit(factor['input'])}".strip()


def stale_rationales(model: ScoreModel) -> dict[str, str]:
    """Factors whose rule changed from the model it was copied from while the rationale did not.

    Code → the rule that rationale was written for. The label follows a changed rule on save
    (``scoring.services``); a rationale is the hematologist's words, so it is flagged, not rewritten.
    """
    source = model.derived_from
    if source is None:
        return {}
    before = {f["code"]: f for f in source.spec.get("factors", [])}
    stale = {}
    for f in model.spec.get("factors", []):
        was = before.get(f["code"])
        rationale = (f.get("rationale") or "").strip()
        if was is None or not rationale or rationale != (was.get("rationale") or "").strip():
            continue
        if f["comparison"] != was["comparison"] or Decimal(str(f["cut"])) != Decimal(str(was["cut"])):
            stale[f["code"]] = _rule_text(was)
    return stale


def stale_rationale_rows(model: ScoreModel) -> list[tuple[str, str]]:
    """The editor's warning: (input name, rule the rationale was written for), in factor order."""
    stale = stale_rationales(model)
    return [
        (input_label(f["input"]), stale[f["code"]])
        for f in model.spec.get("factors", [])
        if f["code"] in stale
    ]


def score_model_views(model: ScoreModel) -> dict[str, Any]:
    """A model card: its factors with units, band thresholds and total points."""
    spec = model.to_spec()
    stale = stale_rationales(model)
    return {
        "factors": [
            {
                "code": f.code,
                "input": input_label(f.input),
                "cut": f"{f.comparison} {_num(str(f.cut))} {input_unit(f.input)}".strip(),
                "points": f.points,
                "label": f.label,
                "rationale": shipped_text(f.rationale),
                "rationale_written_for": stale.get(f.code, ""),
            }
            for f in spec.factors
        ],
        "description": shipped_text(model.description),
        "intermediate_from": spec.intermediate_from,
        "high_from": spec.high_from,
        "total_points": spec.total_points,
        "history": list(model.history.select_related("history_user").order_by("-history_date")[:50]),
    }


BAND_ORDER = (score.BAND_LOW, score.BAND_INTERMEDIATE, score.BAND_HIGH)


@dataclass(frozen=True)
class WhatIf:
    """How the day-7 band of the user's patients would change under another model (not stored)."""

    active: ScoreModel
    patients: int
    changed: int
    higher: int
    lower: int
    # rows: band under the active model; columns: band under the candidate, in BAND_ORDER.
    matrix: list[tuple[str, list[int]]]


def score_model_what_if(model: ScoreModel, *, user: Any) -> WhatIf | None:
    """Day-7 bands of the user's patients with a day-7 result, active model versus ``model``.

    Computed with the pure rules from the stored inputs; nothing is stored. None for the
    active model itself.
    """
    active = ScoreModel.objects.active()
    if model.pk == active.pk:
        return None
    current, candidate = active.to_spec(), model.to_spec()
    ids = visible_patients(user).filter(infusion__isnull=False).values_list("pk", flat=True)
    counts = {(a, b): 0 for a in BAND_ORDER for b in BAND_ORDER}
    tz = site_zone()
    for patient in patients_with_inputs(ids):
        inputs = patient_inputs(patient, tz)
        before, after = (
            score.day7_score(
                spec,
                baseline_mrd_pct=inputs.baseline_mrd_pct,
                post_ld_mrd_pct=inputs.post_ld_mrd_pct,
                labs=inputs.labs,
                therapy_days=inputs.observations,
                baseline_mrd_comparator=inputs.baseline_mrd_comparator,
                post_ld_mrd_comparator=inputs.post_ld_mrd_comparator,
            )
            for spec in (current, candidate)
        )
        if all(f.missing for f in before.factors if f.input not in score.MRD_INPUTS):
            continue  # no day-7 lab result yet
        counts[(before.band, after.band)] += 1
    n = sum(counts.values())
    rank = {b: i for i, b in enumerate(BAND_ORDER)}
    return WhatIf(
        active=active,
        patients=n,
        changed=sum(v for (a, b), v in counts.items() if a != b),
        higher=sum(v for (a, b), v in counts.items() if rank[b] > rank[a]),
        lower=sum(v for (a, b), v in counts.items() if rank[b] < rank[a]),
        matrix=[(a, [counts[(a, b)] for b in BAND_ORDER]) for a in BAND_ORDER],
    )
