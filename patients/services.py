"""Clinical write services (SPEC 2, 4). Every write path goes through here.

Each service takes keyword-only arguments, runs in one transaction, validates,
saves with its change history, and recomputes the derived results of the
affected patient before the transaction commits. Errors are Django
``ValidationError`` keyed by field, with a message that says what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# The write primitives live below both apps (crsrisk.writes); their old names stay importable here.
from crsrisk.writes import (  # noqa: F401  # re-exported
    FUTURE_TOLERANCE,
    ConflictError,
    NeedsConfirmation,
    check_not_future_date,
    check_not_future_time,
    site_today,
    site_zone,
)
from crsrisk.writes import check_version as _check_version
from crsrisk.writes import require_reason as _require_reason
from crsrisk.writes import save_with_history as _save
from patients.models import (
    EVENT_DETAILS,
    MRN_VALIDATOR,
    TMAX_MAX_C,
    TMAX_MIN_C,
    CareTeam,
    ClinicalEvent,
    Comparator,
    EventKind,
    GradeOverride,
    Hypotension,
    Infusion,
    LabResult,
    Observation,
    Oxygen,
    Patient,
    SiteParameters,
    Source,
    validate_display_text,
)
from scoring.i18n import error_text, localize
from scoring.models import Alert, ScoreModel
from scoring.rules import units
from scoring.rules.days import MAX_DAY, MIN_DAY, day_of, day_of_date
from scoring.services import recompute_all_in_chunks, request_recompute

# --- helpers ------------------------------------------------------------------------------


def _check_day(day: int, field_name: str) -> None:
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValidationError(
            {
                field_name: _(
                    "Day %(day)s after infusion is outside the accepted range "
                    "%(min)d…+%(max)d: probably a wrong date or a wrong patient."
                )
                % {"day": f"{day:+d}", "min": MIN_DAY, "max": MAX_DAY}
            }
        )


# A planned infusion further ahead than this is taken for a typo (a year or a month wrong);
# apheresis and manufacturing put registration weeks, not many months, before day 0.
PLANNED_INFUSION_MAX_DAYS = 180
# An age at infusion outside these years is more often a wrong birth year than a patient:
# asked on a form, noted by a CSV import (CAR-T for B-ALL treats children and adults).
AGE_AT_INFUSION_MIN_YEARS = 1
AGE_AT_INFUSION_MAX_YEARS = 100


# --- the order of clinical events (SPEC 2.4, 9) ----------------------------------------------

EVENT_DETAIL_WORDS = {
    "crs": gettext_lazy("from CRS"),
    "other": gettext_lazy("from another cause"),
    "anti_leukemic": gettext_lazy("anti-leukemic"),
    "immunomodulatory": gettext_lazy("immunomodulatory"),
}


def event_words(kind: str, on: date, detail: str = "") -> str:
    """An event in words, in the active language: "complete remission on 2025-03-29"."""
    what = str(EventKind(kind).label) if kind in EventKind.values else kind
    if detail:
        what = _("%(kind)s (%(detail)s)") % {"kind": what, "detail": EVENT_DETAIL_WORDS.get(detail, detail)}
    return _("%(event)s on %(date)s") % {"event": what, "date": f"{on:%Y-%m-%d}"}


def event_conflict(recorded: Sequence[Any], *, kind: str, on: date, detail: str = "") -> str | None:
    """Why an event cannot be recorded beside the live ``recorded`` ones, or None (SPEC 2.4).

    ``recorded`` are events with ``kind``, ``date`` and ``detail``. The same event
    (kind, detail, date) is recorded once; nothing follows a death, and a death follows
    everything; a complete remission follows another only after a relapse between them.
    """
    for e in recorded:
        if (e.kind, e.date, e.detail) == (kind, on, detail):
            return _("Already recorded: %(event)s. Nothing was saved: an event is recorded once.") % {
                "event": event_words(e.kind, e.date, e.detail)
            }
    death = next((e for e in recorded if e.kind == EventKind.DEATH), None)
    if kind == EventKind.DEATH:
        if death is not None:
            return _("A death is already recorded (%(event)s); void it first.") % {
                "event": event_words(death.kind, death.date, death.detail)
            }
        later = sorted((e for e in recorded if e.date > on), key=lambda e: e.date)
        if later:
            return _(
                "A death on %(date)s would come before %(event)s, which is already recorded. "
                "Check the date, or void that event first."
            ) % {
                "date": f"{on:%Y-%m-%d}",
                "event": event_words(later[0].kind, later[0].date, later[0].detail),
            }
    elif death is not None and on > death.date:
        return after_death_text(death.date, death.detail, on)
    if kind == EventKind.CR:
        for e in sorted(recorded, key=lambda e: e.date):
            if e.kind != EventKind.CR:
                continue
            low, high = sorted((e.date, on))
            if not any(r.kind == EventKind.RELAPSE and low <= r.date <= high for r in recorded):
                return _(
                    "A second complete remission needs a relapse before it: %(event)s is already recorded, "
                    "with no relapse between it and %(date)s. Record the relapse first, "
                    "or check the date."
                ) % {"event": event_words(e.kind, e.date, e.detail), "date": f"{on:%Y-%m-%d}"}
    return None


def after_death_text(death_date: date, death_detail: str, on: date) -> str:
    """The refusal of anything dated after the recorded death."""
    return _(
        "%(date)s is after the recorded %(event)s: nothing dated later can be recorded. "
        "Check the date, or the patient."
    ) % {"date": f"{on:%Y-%m-%d}", "event": event_words(EventKind.DEATH, death_date, death_detail)}


def check_not_after_death(patient: Patient, on: date, field_name: str) -> None:
    """Refuse a record dated after the patient's recorded death (the day itself is allowed)."""
    death = ClinicalEvent.objects.active().filter(patient=patient, kind=EventKind.DEATH).first()
    if death is not None and on > death.date:
        raise ValidationError({field_name: after_death_text(death.date, death.detail, on)})


def _check_death_after_records(patient: Patient, on: date) -> None:
    """Refuse a death dated before a recorded observation, grade override or lab value."""
    obs = Observation.objects.active().filter(patient=patient, date__gt=on).order_by("date").first()
    if obs is not None:
        raise ValidationError(
            {
                "date": _(
                    "A death on %(date)s would come before the observation of %(other)s, which is "
                    "already recorded. Check the date, or void that observation first."
                )
                % {"date": f"{on:%Y-%m-%d}", "other": f"{obs.date:%Y-%m-%d}"}
            }
        )
    override = GradeOverride.objects.active().filter(patient=patient, date__gt=on).order_by("date").first()
    if override is not None:
        raise ValidationError(
            {
                "date": _(
                    "A death on %(date)s would come before the CRS grade set by hand for %(other)s. "
                    "Check the date, or remove that grade first."
                )
                % {"date": f"{on:%Y-%m-%d}", "other": f"{override.date:%Y-%m-%d}"}
            }
        )
    next_day = datetime.combine(on + timedelta(days=1), time.min, tzinfo=site_zone())
    lab = patient.labs.active().filter(collected_at__gte=next_day).order_by("collected_at").first()
    if lab is not None:
        raise ValidationError(
            {
                "date": _(
                    "A death on %(date)s would come before the %(analyte)s value collected at %(other)s, "
                    "which is already recorded. Check the date, or void that value first."
                )
                % {
                    "date": f"{on:%Y-%m-%d}",
                    "analyte": lab.get_analyte_display(),
                    "other": f"{lab.collected_at.astimezone(site_zone()):%Y-%m-%d %H:%M}",
                }
            }
        )


def _lock_patient(patient: Patient) -> Patient:
    """Serialize writers of one patient, so two recomputes never interleave."""
    return Patient.objects.select_for_update(of=("self",)).select_related("infusion").get(pk=patient.pk)


def _recompute(patient: Patient, *, since: datetime | None = None) -> None:
    # ``since``: the earliest collection time of the labs a lab-only write changed.
    request_recompute([patient.pk], since=since)


# --- patients ------------------------------------------------------------------------------

INFUSION_FIELDS = (
    "product",
    "infusion_date",
    "lymphodepletion_start",
    "baseline_mrd_pct",
    "post_ld_mrd_pct",
    "baseline_mrd_comparator",
    "post_ld_mrd_comparator",
)
PATIENT_FIELDS = ("name", "sex", "birth_date", "care_team", "diagnosis", "monitoring_end_day")


def default_care_team() -> CareTeam:
    """The site's default care team, created on first use."""
    params = SiteParameters.load()
    if params.default_care_team is None:
        team, _created = CareTeam.objects.get_or_create(name="Default")
        params.default_care_team = team
        params.save()
    return params.default_care_team


def _validate_mrd(values: dict[str, Any]) -> None:
    for name in ("baseline_mrd_pct", "post_ld_mrd_pct"):
        v = values.get(name)
        if v is not None and not Decimal(0) <= Decimal(v) <= Decimal(100):
            raise ValidationError(
                {name: _("MRD must be between 0 and 100 %%, not %(value)s.") % {"value": v}}
            )
        comparator = values.get(name.replace("_pct", "_comparator")) or ""
        if comparator and (comparator not in Comparator.values or v is None):
            raise ValidationError(
                {
                    name: _("An MRD comparator (%(comparator)s) needs a value, such as <0.01.")
                    % {"comparator": comparator}
                    if v is None
                    else _("An MRD comparator is one of <, <=, >, >=, not %(comparator)s.")
                    % {"comparator": comparator}
                }
            )


@dataclass(frozen=True)
class MrdValue:
    """An MRD as read from a lab system: the value (rounded), its comparator, the notes it deserves."""

    value: Decimal
    comparator: str = ""
    notes: tuple[str, ...] | list[str] = ()


def mrd_values(data: dict[str, Any]) -> dict[str, list[str]]:
    """Split each ``MrdValue`` of ``data`` into its value and comparator fields; return the notes by field."""
    notes: dict[str, list[str]] = {}
    for name in ("baseline_mrd_pct", "post_ld_mrd_pct"):
        mrd = data.get(name)
        if isinstance(mrd, MrdValue):
            data[name] = mrd.value
            data[name.replace("_pct", "_comparator")] = mrd.comparator
            if mrd.notes:
                notes[name] = list(mrd.notes)
    return notes


def mrd_notes(name: str, text: str, *, allow_exponent: bool) -> tuple[str, Decimal, list[str]]:
    """Read an MRD cell or field as given; return (comparator, value, notes in English).

    Raise ValidationError keyed by ``name`` when it is not a percentage from 0 to 100.
    """
    try:
        comparator, value, notes = units.parse_mrd(text, allow_exponent=allow_exponent)
    except units.RuleError as exc:
        raise ValidationError({name: error_text(exc)}) from exc
    return comparator, value, [str(n) for n in notes]


def validate_patient_dates(values: dict[str, Any]) -> None:
    """Check infusion, lymphodepletion and birth dates together (SPEC 2.1)."""
    inf, ld = values.get("infusion_date"), values.get("lymphodepletion_start")
    if inf is None:
        raise ValidationError({"infusion_date": _("The infusion date is required: it defines day 0.")})
    if ld is not None and ld > inf:
        raise ValidationError(
            {"lymphodepletion_start": _("Lymphodepletion must start on or before the infusion date.")}
        )
    latest = site_today() + timedelta(days=PLANNED_INFUSION_MAX_DAYS)
    if inf > latest:
        raise ValidationError(
            {
                "infusion_date": _(
                    "An infusion on %(date)s is more than %(days)d days ahead: probably a wrong year "
                    "or month. Check the date."
                )
                % {"date": f"{inf:%Y-%m-%d}", "days": PLANNED_INFUSION_MAX_DAYS}
            }
        )
    birth = values.get("birth_date")
    if birth is not None and birth > site_today():
        raise ValidationError(
            {
                "birth_date": _("The birth date %(date)s is in the future: check the year.")
                % {"date": f"{birth:%Y-%m-%d}"}
            }
        )
    if birth is not None and birth > inf:
        raise ValidationError({"birth_date": _("The birth date lies after the infusion date.")})
    if birth is not None and ld is not None and birth > ld:
        raise ValidationError({"birth_date": _("The birth date lies after the start of lymphodepletion.")})


def age_in_years(birth: date, on: date) -> int:
    """Completed years of age on a date."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def patient_age_warnings(values: dict[str, Any]) -> dict[str, list[str]]:
    """An age at infusion under 1 or over 100 years, which a form asks to confirm (English: notes)."""
    birth, inf = values.get("birth_date"), values.get("infusion_date")
    if birth is None or inf is None:
        return {}
    age = age_in_years(birth, inf)
    if AGE_AT_INFUSION_MIN_YEARS <= age <= AGE_AT_INFUSION_MAX_YEARS:
        return {}
    if age < AGE_AT_INFUSION_MIN_YEARS:
        text = _(
            "Born %(birth)s, the patient is under 1 year old at infusion (%(infusion)s): "
            "check the birth date."
        )
    else:
        text = _(
            "Born %(birth)s, the patient is %(age)d years old at infusion (%(infusion)s): "
            "check the birth date."
        )
    params = {"birth": f"{birth:%Y-%m-%d}", "infusion": f"{inf:%Y-%m-%d}", "age": age}
    return {"birth_date": [text % params]}


MRN_EXISTS = "mrn_exists"  # the code of the error below: the callers log it as a refused access


def check_mrn_is_new(mrn: str) -> None:
    """Refuse an MRN already stored, in any case: DEMO-0001 and demo-0001 are one patient."""
    stored = Patient.objects.filter(mrn__iexact=mrn).values_list("mrn", flat=True).first()
    if stored == mrn:
        message = _("A patient with MRN %(mrn)s already exists.") % {"mrn": mrn}
    elif stored is not None:
        message = _(
            "MRN %(mrn)s is already stored as %(stored)s; MRNs that differ only in case are the same patient."
        ) % {"mrn": mrn, "stored": stored}
    else:
        return
    raise ValidationError({"mrn": ValidationError(message, code=MRN_EXISTS)})


def is_existing_mrn_error(exc: ValidationError) -> bool:
    """Whether a refusal was :func:`check_mrn_is_new`'s (a probe for another team's MRN)."""
    return any(e.code == MRN_EXISTS for e in getattr(exc, "error_dict", {}).get("mrn", []))


def _validate_name(name: str) -> None:
    try:
        validate_display_text(name)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from exc


@transaction.atomic
def patient_register(
    *,
    user: Any,
    mrn: str,
    name: str,
    infusion_date: date,
    care_team: CareTeam | None = None,
    sex: str = "U",
    birth_date: date | None = None,
    diagnosis: str = "B-ALL",
    product: str = "",
    lymphodepletion_start: date | None = None,
    baseline_mrd_pct: Decimal | None = None,
    post_ld_mrd_pct: Decimal | None = None,
    baseline_mrd_comparator: str = "",
    post_ld_mrd_comparator: str = "",
    synthetic: bool = False,
    confirmed: bool = False,
) -> Patient:
    """Register a patient with their infusion, and compute their first results.

    An age at infusion under 1 or over 100 years raises ``NeedsConfirmation`` unless
    ``confirmed``.
    """
    mrn = (mrn or "").strip()
    try:
        MRN_VALIDATOR(mrn)
    except ValidationError as exc:
        raise ValidationError({"mrn": exc.messages}) from exc
    if not (name or "").strip():
        raise ValidationError({"name": _("A name is required.")})
    _validate_name(name)
    if sex not in ("F", "M", "U"):
        raise ValidationError({"sex": _("Sex must be F, M or U, not '%(sex)s'.") % {"sex": sex}})
    check_mrn_is_new(mrn)
    values = {
        "infusion_date": infusion_date,
        "lymphodepletion_start": lymphodepletion_start,
        "birth_date": birth_date,
        "baseline_mrd_pct": baseline_mrd_pct,
        "post_ld_mrd_pct": post_ld_mrd_pct,
        "baseline_mrd_comparator": baseline_mrd_comparator,
        "post_ld_mrd_comparator": post_ld_mrd_comparator,
    }
    validate_patient_dates(values)
    _validate_mrd(values)
    if not confirmed and (warnings := patient_age_warnings(values)):
        raise NeedsConfirmation(warnings)
    patient = Patient(
        mrn=mrn,
        name=name.strip(),
        sex=sex,
        birth_date=birth_date,
        care_team=care_team or default_care_team(),
        diagnosis=diagnosis or "B-ALL",
        synthetic=synthetic,
    )
    _save(patient, user=user, reason="registered")
    infusion = Infusion(
        patient=patient,
        product=product or "",
        infusion_date=infusion_date,
        lymphodepletion_start=lymphodepletion_start,
        baseline_mrd_pct=baseline_mrd_pct,
        post_ld_mrd_pct=post_ld_mrd_pct,
        baseline_mrd_comparator=baseline_mrd_comparator or "",
        post_ld_mrd_comparator=post_ld_mrd_comparator or "",
    )
    _save(infusion, user=user, reason="registered")
    _recompute(patient)
    return patient


def check_data_fits_infusion(patient: Patient, infusion_date: date) -> None:
    """Refuse a new infusion date that would put stored data outside days −30…+730."""
    tz = site_zone()
    days = [
        day_of(ts, tz, infusion_date) for ts in patient.labs.active().values_list("collected_at", flat=True)
    ]
    for model in (Observation, ClinicalEvent):
        days += [
            day_of_date(d, infusion_date)
            for d in model.objects.active().filter(patient=patient).values_list("date", flat=True)
        ]
    outside = [d for d in days if not MIN_DAY <= d <= MAX_DAY]
    if outside:
        raise ValidationError(
            {
                "infusion_date": _(
                    "With this infusion date, %(count)d stored value(s) would fall outside days "
                    "%(min)d…+%(max)d (e.g. day %(day)s): check the date, or void those values first."
                )
                % {"count": len(outside), "min": MIN_DAY, "max": MAX_DAY, "day": f"{outside[0]:+d}"}
            }
        )


@transaction.atomic
def patient_update(
    *,
    user: Any,
    patient: Patient,
    expected_version: int | None,
    reason: str,
    confirmed: bool = False,
    **changes: Any,
) -> Patient:
    """Edit a patient's demographics or infusion data, keeping the history.

    A new birth or infusion date that puts the age at infusion under 1 or over 100
    years raises ``NeedsConfirmation`` unless ``confirmed``.
    """
    reason = _require_reason(reason, _("change a patient record"))
    patient = _lock_patient(patient)
    _check_version(patient, expected_version, _("patient record"))
    unknown = set(changes) - set(PATIENT_FIELDS) - set(INFUSION_FIELDS)
    if unknown:
        raise ValidationError(
            _("Unknown patient fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))}
        )
    for name in ("baseline_mrd_pct", "post_ld_mrd_pct"):
        # A new MRD without a comparator is a measured value: "<" of the old one does not stay.
        if name in changes:
            changes.setdefault(name.replace("_pct", "_comparator"), "")
    infusion = patient.infusion
    merged = {f: getattr(infusion, f) for f in INFUSION_FIELDS}
    merged["birth_date"] = patient.birth_date
    merged.update({k: v for k, v in changes.items() if k in (*INFUSION_FIELDS, "birth_date")})
    validate_patient_dates(merged)
    _validate_mrd(merged)
    dates_changed = merged["birth_date"] != patient.birth_date or (
        merged["infusion_date"] != infusion.infusion_date
    )
    if dates_changed and not confirmed and (warnings := patient_age_warnings(merged)):
        raise NeedsConfirmation(warnings)
    if "name" in changes and not (changes["name"] or "").strip():
        raise ValidationError({"name": _("A name is required.")})
    if "name" in changes:
        _validate_name(changes["name"])
    if "infusion_date" in changes and changes["infusion_date"] != infusion.infusion_date:
        check_data_fits_infusion(patient, changes["infusion_date"])
    patient_changed = infusion_changed = False
    for f in PATIENT_FIELDS:
        if f in changes and getattr(patient, f) != changes[f]:
            setattr(patient, f, changes[f])
            patient_changed = True
    for f in INFUSION_FIELDS:
        if f in changes and getattr(infusion, f) != changes[f]:
            setattr(infusion, f, changes[f])
            infusion_changed = True
    patient.version += 1
    _save(patient, user=user, reason=reason)
    if infusion_changed:
        infusion.version += 1
        _save(infusion, user=user, reason=reason)
    if infusion_changed or patient_changed:
        _recompute(patient)
    return patient


# --- labs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabEntry:
    """One analyte of a panel, as typed."""

    analyte: str
    value: str
    unit: str = ""
    note: str = ""


@dataclass
class ValidatedLab:
    analyte: str
    comparator: str
    value: Decimal
    entered_value: str
    entered_unit: str
    loinc: str
    # English, as stored in the lab's flags (the audit trail), and in the active language.
    warnings: list[str] = field(default_factory=list)
    warning_texts: list[str] = field(default_factory=list)
    # Set when the value came in a unit other than the site's usual one (factor ≠ 1): a form
    # asks for confirmation with it, a lab system's value is stored with it as a note.
    unit_note: str = ""
    unit_note_text: str = ""
    # Set when the value in the canonical unit had more decimals than are stored (rounded).
    rounding_note: str = ""
    rounding_note_text: str = ""


def usual_units() -> dict[str, str]:
    """The site's usual unit of every analyte (SPEC 8.5); the canonical unit unless set."""
    stored = SiteParameters.objects.filter(pk=1).values_list("usual_units", flat=True).first() or {}
    return {code: stored.get(code) or spec.canonical_unit for code, spec in units.ANALYTES.items()}


def validate_lab(
    *,
    analyte: str,
    value_text: str,
    unit: str,
    previous: Decimal | None = None,
    field_name: str | None = None,
    usual_units: Mapping[str, str] | None = None,
    allow_exponent: bool = False,
) -> ValidatedLab:
    """Parse, convert and range-check one lab value; raise ValidationError naming the field.

    ``analyte`` may be a code or a LOINC. ``previous`` is the patient's previous
    canonical value of the analyte, for the ×10 jump warning. ``usual_units`` are the
    site's usual units by analyte code (``usual_units()``; none: the canonical ones); a
    value in a unit that converts differently gets a ``unit_note``. ``allow_exponent`` lets "1.1e4" through
    (``units.parse_value``).
    """
    key = field_name or "analyte"
    try:
        spec = units.resolve_analyte(analyte)
    except units.AnalyteError as exc:
        raise ValidationError({key: error_text(exc)}) from exc
    key = field_name or "value"
    loinc = analyte.strip() if analyte.strip() in spec.loinc else spec.loinc[0]
    try:
        comparator, number = units.parse_value(value_text, allow_exponent=allow_exponent)
    except ValueError as exc:
        raise ValidationError(
            {key: _("%(analyte)s: %(error)s") % {"analyte": localize(spec.label), "error": error_text(exc)}}
        ) from exc
    try:
        canonical = units.to_canonical(spec.code, number, unit or "")
    except units.UnitError as exc:
        raise ValidationError({field_name or "unit": error_text(exc)}) from exc
    try:
        converted = bool(unit) and units.normalise_unit(unit) != units.normalise_unit(spec.canonical_unit)
        messages = units.check_range(
            spec.code,
            canonical,
            comparator=comparator or "",
            entered=f"{value_text.strip()} {unit.strip()}" if converted else "",
        )
    except units.RangeError as exc:
        raise ValidationError({key: error_text(exc)}) from exc
    if comparator is None and previous is not None and units.is_tenfold_jump(previous, canonical):
        messages.append(units.tenfold_warning(spec.code, canonical, Decimal(previous)))
    note = None
    usual_unit = (usual_units or {}).get(spec.code) or spec.canonical_unit
    if units.unit_differs(spec.code, unit, usual_unit):
        note = units.unit_conversion_message(
            spec.code,
            entered=value_text.strip(),
            unit=unit,
            canonical=canonical,
            comparator=comparator or "",
            usual_unit=usual_unit,
        )
    rounded = _rounding_message(spec.code, value_text, number, unit)
    return ValidatedLab(
        analyte=spec.code,
        comparator=comparator or "",
        value=canonical,
        entered_value=value_text.strip(),
        entered_unit=(unit or "").strip(),
        loinc=loinc,
        warnings=[str(m) for m in messages],
        warning_texts=[localize(m) for m in messages],
        unit_note=str(note) if note else "",
        unit_note_text=localize(note) if note else "",
        rounding_note=str(rounded) if rounded else "",
        rounding_note_text=localize(rounded) if rounded else "",
    )


def _rounding_message(analyte: str, entered: str, number: Decimal, unit: str) -> units.Message | None:
    """The rounding note of a value given in the canonical unit (factor 1); None for a conversion."""
    if units.unit_differs(analyte, unit, units.ANALYTES[analyte].canonical_unit):
        return None
    return units.rounding_message(entered, number)


def lab_rounding_note(lab: LabResult) -> str:
    """The note of a stored lab given with more decimals than are stored, in English; or ""."""
    try:
        _comparator, number = units.parse_value(lab.entered_value, allow_exponent=True)
    except units.ValueFormatError:
        return ""
    message = _rounding_message(lab.analyte, lab.entered_value, number, lab.entered_unit)
    return str(message) if message else ""


def lab_unit_note(lab: LabResult, usual: dict[str, str] | None = None) -> str:
    """The note of a stored lab given in a unit other than the site's usual one, in English; or ""."""
    unit = (usual or usual_units())[lab.analyte]
    if not units.unit_differs(lab.analyte, lab.entered_unit, unit):
        return ""
    message = units.unit_conversion_message(
        lab.analyte,
        entered=lab.entered_value,
        unit=lab.entered_unit,
        canonical=Decimal(lab.value),
        comparator=lab.comparator,
        usual_unit=unit,
    )
    return str(message)


def previous_lab_value(patient: Patient, analyte: str, before: datetime) -> Decimal | None:
    """The patient's latest live, uncensored value of ``analyte`` before ``before``."""
    row = (
        LabResult.objects.active()
        .filter(patient=patient, analyte=analyte, collected_at__lt=before, comparator="")
        .order_by("-collected_at")
        .values_list("value", flat=True)
        .first()
    )
    return None if row is None else Decimal(row)


def check_collected_at(patient: Patient, collected_at: datetime, field_name: str = "collected_at") -> int:
    """Return the day of ``collected_at``; refuse naive times and days out of range."""
    if collected_at is None or timezone.is_naive(collected_at):
        raise ValidationError({field_name: _("The collection time is required, with a time zone.")})
    day = day_of(collected_at, site_zone(), patient.infusion.infusion_date)
    _check_day(day, field_name)
    check_not_future_time(collected_at, field_name)
    check_not_after_death(patient, collected_at.astimezone(site_zone()).date(), field_name)
    return day


@transaction.atomic
def lab_panel_record(
    *,
    user: Any,
    patient: Patient,
    collected_at: datetime,
    entries: Sequence[LabEntry],
    confirmed: bool = False,
    source: str = Source.FORM,
    allow_exponent: bool = False,
) -> list[LabResult]:
    """Record the analytes of one collection time at once, all or nothing.

    On a form (``source`` form), a value in a unit that converts differently from the
    site's usual unit asks for confirmation, like an unusual value (SPEC 8.5). A lab
    system sends its units deliberately: its value is stored, and the caller reports
    ``lab_unit_note`` of each stored row (see ``patients.api.batch``).
    """
    patient = _lock_patient(patient)
    usual = usual_units()
    errors: dict[str, list[str]] = {}
    try:
        check_collected_at(patient, collected_at)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    entries = [e for e in entries if (e.value or "").strip()]
    if not entries and not errors:
        raise ValidationError({"__all__": _("Enter at least one value.")})
    validated: list[tuple[LabEntry, ValidatedLab]] = []
    warnings: dict[str, list[str]] = {}
    seen: set[str] = set()
    for entry in entries:
        try:
            spec = units.resolve_analyte(entry.analyte)
        except units.AnalyteError as exc:
            errors.setdefault(entry.analyte, []).append(error_text(exc))
            continue
        if spec.code in seen:
            errors.setdefault(spec.code, []).append(
                _("%(analyte)s is entered twice in this panel.") % {"analyte": localize(spec.label)}
            )
            continue
        seen.add(spec.code)
        previous = None if errors else previous_lab_value(patient, spec.code, collected_at)
        try:
            v = validate_lab(
                analyte=entry.analyte,
                value_text=entry.value,
                unit=entry.unit,
                previous=previous,
                field_name=spec.code,
                usual_units=usual,
                allow_exponent=allow_exponent,
            )
        except ValidationError as exc:
            for k, msgs in exc.message_dict.items():
                errors.setdefault(k, []).extend(msgs)
            continue
        if (
            not errors
            and LabResult.objects.active()
            .filter(patient=patient, analyte=v.analyte, collected_at=collected_at)
            .exists()
        ):
            errors.setdefault(spec.code, []).append(
                _("%(analyte)s is already recorded at this collection time: correct that entry instead.")
                % {"analyte": localize(spec.label)}
            )
            continue
        if v.warnings:
            warnings[spec.code] = list(v.warning_texts)
        if v.unit_note and source == Source.FORM:
            warnings.setdefault(spec.code, []).insert(0, v.unit_note_text)
        validated.append((entry, v))
    if errors:
        raise ValidationError(errors)
    if warnings and not confirmed:
        raise NeedsConfirmation(warnings)
    now = timezone.now()
    rows = []
    for entry, v in validated:
        lab = LabResult(
            patient=patient,
            analyte=v.analyte,
            value=v.value,
            comparator=v.comparator,
            collected_at=collected_at,
            entered_value=v.entered_value,
            entered_unit=v.entered_unit,
            loinc=v.loinc,
            note=entry.note,
            flags=v.warnings,
            source=source,
            entered_by=user if getattr(user, "is_authenticated", False) else None,
            entered_at=now,
        )
        _save(lab, user=user, reason="entered")
        rows.append(lab)
    _recompute(patient, since=collected_at)
    return rows


def lab_record(
    *,
    user: Any,
    patient: Patient,
    analyte: str,
    value: str,
    unit: str = "",
    collected_at: datetime,
    note: str = "",
    confirmed: bool = False,
    source: str = Source.FORM,
    allow_exponent: bool = False,
) -> LabResult:
    """Record one lab value (a panel of one)."""
    (lab,) = lab_panel_record(
        user=user,
        patient=patient,
        collected_at=collected_at,
        entries=[LabEntry(analyte=analyte, value=value, unit=unit, note=note)],
        confirmed=confirmed,
        source=source,
        allow_exponent=allow_exponent,
    )
    return lab


@transaction.atomic
def lab_correct(
    *,
    user: Any,
    lab: LabResult,
    expected_version: int | None,
    value: str,
    unit: str = "",
    reason: str,
    collected_at: datetime | None = None,
    confirmed: bool = False,
    source: str = Source.FORM,
    allow_exponent: bool = False,
) -> LabResult:
    """Correct a lab value; the previous value stays in the history with the reason.

    As in ``lab_panel_record``, a form asks to confirm a unit other than the usual one;
    another ``source`` stores it, and the caller reports ``lab_unit_note``.
    """
    reason = _require_reason(reason, _("correct a lab value"))
    patient = _lock_patient(lab.patient)
    lab = LabResult.objects.select_for_update().get(pk=lab.pk)
    if lab.is_voided:
        raise ValidationError(_("This lab value is voided and can no longer be corrected."))
    _check_version(lab, expected_version, _("lab value"))
    new_time = collected_at or lab.collected_at
    earliest = min(new_time, lab.collected_at)
    check_collected_at(patient, new_time)
    previous = previous_lab_value(patient, lab.analyte, new_time)
    v = validate_lab(
        analyte=lab.analyte,
        value_text=value,
        unit=unit,
        previous=previous,
        usual_units=usual_units(),
        allow_exponent=allow_exponent,
    )
    asks = ([v.unit_note_text] if v.unit_note and source == Source.FORM else []) + v.warning_texts
    if asks and not confirmed:
        raise NeedsConfirmation({lab.analyte: asks})
    lab.value, lab.comparator = v.value, v.comparator
    lab.entered_value, lab.entered_unit = v.entered_value, v.entered_unit
    lab.collected_at = new_time
    lab.flags = v.warnings
    lab.version += 1
    try:
        with transaction.atomic():
            _save(lab, user=user, reason=reason)
    except IntegrityError as exc:
        raise ValidationError(
            {"collected_at": _("Another live value of this analyte exists at that collection time.")}
        ) from exc
    _recompute(patient, since=earliest)
    return lab


def _void(row: Any, *, user: Any, expected_version: int | None, reason: str, what: str) -> Any:
    """Void one clinical row with a reason (never a delete), then recompute its patient."""
    reason = _require_reason(reason, _("void this %(what)s") % {"what": what})
    patient = _lock_patient(row.patient)
    row = type(row).objects.select_for_update().get(pk=row.pk)
    _check_version(row, expected_version, what)
    if row.is_voided:
        raise ValidationError(_("This %(what)s is already voided.") % {"what": what})
    row.voided_at = timezone.now()
    row.voided_by = user if getattr(user, "is_authenticated", False) else None
    row.void_reason = reason
    row.version += 1
    _save(row, user=user, reason=f"voided: {reason}")
    _recompute(patient, since=row.collected_at if isinstance(row, LabResult) else None)
    return row


@transaction.atomic
def lab_void(*, user: Any, lab: LabResult, expected_version: int | None, reason: str) -> LabResult:
    """Void a lab value with a reason; it stops counting but is never deleted."""
    return _void(lab, user=user, expected_version=expected_version, reason=reason, what=_("lab value"))


# --- observations --------------------------------------------------------------------------

OBSERVATION_FIELDS = (
    "tmax_c",
    "hypotension",
    "oxygen",
    "antipyretic",
    "tocilizumab",
    "corticosteroids",
)


def validate_observation(values: dict[str, Any]) -> dict[str, Any]:
    """Check the ASTCT inputs of one day (SPEC 2.3); return them normalised."""
    out = dict(values)
    tmax = out.get("tmax_c")
    if tmax is not None and tmax != "":
        try:
            tmax = Decimal(str(tmax))
        except ArithmeticError as exc:
            raise ValidationError(
                {"tmax_c": _("Tmax must be a number in °C, not '%(value)s'.") % {"value": tmax}}
            ) from exc
        if not tmax.is_finite() or not TMAX_MIN_C <= tmax <= TMAX_MAX_C:
            raise ValidationError(
                {
                    "tmax_c": _(
                        "Tmax %(value)s °C is outside the accepted range 30.0–45.0 °C (or leave it empty)."
                    )
                    % {"value": tmax}
                }
            )
        out["tmax_c"] = tmax.quantize(Decimal("0.1"))
    else:
        out["tmax_c"] = None
    if out.get("hypotension", "none") not in Hypotension.values:
        raise ValidationError(
            {
                "hypotension": _("Hypotension must be one of %(values)s.")
                % {"values": ", ".join(Hypotension.values)}
            }
        )
    if out.get("oxygen", "none") not in Oxygen.values:
        raise ValidationError(
            {"oxygen": _("Oxygen must be one of %(values)s.") % {"values": ", ".join(Oxygen.values)}}
        )
    out.setdefault("hypotension", Hypotension.NONE)
    out.setdefault("oxygen", Oxygen.NONE)
    for flag in ("antipyretic", "tocilizumab", "corticosteroids"):
        out[flag] = bool(out.get(flag, False))
    return out


@transaction.atomic
def observation_record(
    *,
    user: Any,
    patient: Patient,
    date: date,
    expected_version: int | None = None,
    reason: str = "",
    note: str = "",
    source: str = Source.FORM,
    **values: Any,
) -> Observation:
    """Record a day's observation; a second entry for that day updates it (with a reason)."""
    patient = _lock_patient(patient)
    unknown = set(values) - set(OBSERVATION_FIELDS)
    if unknown:
        raise ValidationError(
            _("Unknown observation fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))}
        )
    _check_day(day_of_date(date, patient.infusion.infusion_date), "date")
    check_not_future_date(date, "date")
    check_not_after_death(patient, date, "date")
    clean = validate_observation(values)
    existing = Observation.objects.active().select_for_update().filter(patient=patient, date=date).first()
    if existing is None:
        if expected_version:
            raise ConflictError(
                _("The observation you edited has been voided since you opened it. Nothing was saved."),
                code="conflict",
            )
        obs = Observation(
            patient=patient,
            date=date,
            note=note,
            source=source,
            entered_by=user if getattr(user, "is_authenticated", False) else None,
            entered_at=timezone.now(),
            **clean,
        )
        _save(obs, user=user, reason="entered")
    else:
        if all(getattr(existing, f) == v for f, v in clean.items()) and note == existing.note:
            return existing
        if expected_version is None:
            # The writer never saw the stored row: changing it now would be a lost update.
            who = getattr(existing.entered_by, "username", None) or existing.source
            raise ConflictError(
                _(
                    "An observation for %(date)s is already recorded (%(who)s, version %(version)d). "
                    "Nothing was saved: review it, then change it with a reason."
                )
                % {"date": f"{date:%Y-%m-%d}", "who": who, "version": existing.version},
                code="conflict",
            )
        _check_version(existing, expected_version, _("observation"))
        reason = _require_reason(
            reason, _("change the observation of %(date)s") % {"date": f"{date:%Y-%m-%d}"}
        )
        for f, v in clean.items():
            setattr(existing, f, v)
        existing.note = note
        existing.version += 1
        _save(existing, user=user, reason=reason)
        obs = existing
    _recompute(patient)
    return obs


@transaction.atomic
def observation_void(
    *, user: Any, observation: Observation, expected_version: int | None, reason: str
) -> Observation:
    """Void a day's observation with a reason."""
    return _void(
        observation, user=user, expected_version=expected_version, reason=reason, what=_("observation")
    )


# --- events and overrides ------------------------------------------------------------------


def validate_event(kind: str, detail: str) -> tuple[str, str]:
    """Check an event kind and its detail (SPEC 2.4)."""
    if kind not in EventKind.values:
        raise ValidationError(
            {
                "kind": _("Event must be one of %(values)s, not '%(kind)s'.")
                % {"values": ", ".join(EventKind.values), "kind": kind}
            }
        )
    allowed = EVENT_DETAILS.get(kind)
    detail = (detail or "").strip()
    if allowed and detail not in allowed:
        raise ValidationError(
            {
                "detail": _("A %(kind)s event needs a detail: %(allowed)s.")
                % {
                    "kind": EventKind(kind).label,
                    "allowed": _(" or ").join(allowed),  # the codes a file or the API sends
                }
            }
        )
    if not allowed and detail:
        raise ValidationError(
            {"detail": _("A %(kind)s event takes no detail.") % {"kind": EventKind(kind).label}}
        )
    return kind, detail


@transaction.atomic
def event_record(
    *,
    user: Any,
    patient: Patient,
    kind: str,
    date: date,
    detail: str = "",
    note: str = "",
    source: str = Source.FORM,
) -> ClinicalEvent:
    """Record a clinical event or outcome."""
    patient = _lock_patient(patient)
    kind, detail = validate_event(kind, detail)
    _check_day(day_of_date(date, patient.infusion.infusion_date), "date")
    check_not_future_date(date, "date")
    recorded = list(ClinicalEvent.objects.active().filter(patient=patient))
    conflict = event_conflict(recorded, kind=kind, on=date, detail=detail)
    if conflict is not None:
        second_death = kind == EventKind.DEATH and any(e.kind == EventKind.DEATH for e in recorded)
        raise ValidationError({"kind" if second_death else "date": conflict})
    if kind == EventKind.DEATH:
        _check_death_after_records(patient, date)
    event = ClinicalEvent(
        patient=patient,
        kind=kind,
        date=date,
        detail=detail,
        note=note,
        source=source,
        entered_by=user if getattr(user, "is_authenticated", False) else None,
        entered_at=timezone.now(),
    )
    _save(event, user=user, reason="entered")
    _recompute(patient)
    return event


@transaction.atomic
def event_void(
    *, user: Any, event: ClinicalEvent, expected_version: int | None, reason: str
) -> ClinicalEvent:
    """Void an event with a reason."""
    return _void(event, user=user, expected_version=expected_version, reason=reason, what=_("event"))


@transaction.atomic
def grade_override_set(*, user: Any, patient: Patient, date: date, grade: int, reason: str) -> GradeOverride:
    """Record a hematologist's CRS grade for a day; the computed grade is kept too."""
    reason = _require_reason(reason, _("override a CRS grade"))
    patient = _lock_patient(patient)
    if not isinstance(grade, int) or not 0 <= grade <= 4:
        raise ValidationError({"grade": _("A recorded grade must be 0–4 (grade 5 is a death from CRS).")})
    day = day_of_date(date, patient.infusion.infusion_date)
    if day < 0:
        raise ValidationError({"date": _("There is no CRS grade before infusion (day 0).")})
    _check_day(day, "date")
    check_not_future_date(date, "date")
    check_not_after_death(patient, date, "date")
    current = GradeOverride.objects.active().select_for_update().filter(patient=patient, date=date).first()
    if current is not None and (current.grade, current.reason) == (grade, reason):
        # The same grade and reason again (a form saved twice after Back): nothing to record.
        raise ValidationError(
            {
                "grade": _(
                    "CRS grade %(grade)d is already recorded by hand for %(date)s (%(reason)s). "
                    "Nothing was saved: a grade is recorded once."
                )
                % {"grade": grade, "date": f"{date:%Y-%m-%d}", "reason": current.reason}
            }
        )
    now = timezone.now()
    if current is not None:
        current.voided_at, current.void_reason = now, f"replaced: {reason}"
        current.voided_by = user if getattr(user, "is_authenticated", False) else None
        current.version += 1
        _save(current, user=user, reason=f"replaced: {reason}")
    override = GradeOverride(
        patient=patient,
        date=date,
        grade=grade,
        reason=reason,
        entered_by=user if getattr(user, "is_authenticated", False) else None,
        entered_at=now,
    )
    _save(override, user=user, reason=reason)
    _recompute(patient)
    return override


@transaction.atomic
def grade_override_void(
    *, user: Any, override: GradeOverride, reason: str, expected_version: int | None = None
) -> GradeOverride:
    """Remove a grade override (void with a reason); the computed grade applies again."""
    return _void(
        override, user=user, expected_version=expected_version, reason=reason, what=_("grade override")
    )


@transaction.atomic
def alert_acknowledge(*, user: Any, alert: Alert, note: str) -> Alert:
    """A hematologist acknowledges an alert with a note; the alert is kept."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": _("An acknowledgement needs a note.")})
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.acknowledged_at is not None:
        raise ValidationError(_("This alert is already acknowledged."))
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = user
    alert.acknowledgement_note = note
    _save(alert, user=user, reason=f"acknowledged: {note}")
    return alert


# --- site parameters -----------------------------------------------------------------------

SITE_FIELDS = (
    "bcell_threshold",
    "regeneration_window_days",
    "confirm_regeneration",
    "crs_outcome_window",
    "default_care_team",
    "usual_units",
)
# The usual units change no derived result: they only decide what a form asks.
SITE_FIELDS_WITHOUT_RECOMPUTE = frozenset({"usual_units"})


def _validate_usual_units(value: Any) -> dict[str, str]:
    """Check an analyte→unit mapping; keep only units other than the canonical one."""
    if not isinstance(value, dict):
        raise ValidationError({"usual_units": _("The usual units must map analyte codes to units.")})
    out: dict[str, str] = {}
    for code, unit in value.items():
        spec = units.ANALYTES.get(code)
        if spec is None:
            raise ValidationError(
                {"usual_units": _("Unknown analyte '%(code)s' in the usual units.") % {"code": code}}
            )
        try:
            factor = spec.unit_factor(str(unit or ""))
        except units.UnitError as exc:
            raise ValidationError({f"usual_unit_{code}": error_text(exc)}) from exc
        if factor.display != spec.canonical_unit:
            out[code] = factor.display
    return out


def site_parameters_update(
    *, user: Any, expected_version: int | None, reason: str, **changes: Any
) -> SiteParameters:
    """Change the clinical site parameters and recompute every patient (SPEC 8.5).

    The change is one audited transaction; the recompute then runs in chunks of patients,
    each locked as a write locks them and committed on its own, so an entry made meanwhile
    waits for its chunk or is computed under the new parameters, never overwritten.
    Refused while a score model activation runs. A change of the usual units alone
    recomputes nothing.
    """
    params, recompute = _site_parameters_change(
        user=user, expected_version=expected_version, reason=reason, **changes
    )
    if recompute:
        recompute_all_in_chunks()
    return params


@transaction.atomic
def _site_parameters_change(
    *, user: Any, expected_version: int | None, reason: str, **changes: Any
) -> tuple[SiteParameters, bool]:
    reason = _require_reason(reason, _("change the site parameters"))
    unknown = set(changes) - set(SITE_FIELDS)
    if unknown:
        raise ValidationError(
            _("Unknown site parameters: %(fields)s.") % {"fields": ", ".join(sorted(unknown))}
        )
    SiteParameters.load()
    params = SiteParameters.objects.select_for_update().get(pk=1)
    _check_version(params, expected_version, _("site parameters"))
    if "bcell_threshold" in changes and Decimal(changes["bcell_threshold"]) < 0:
        raise ValidationError({"bcell_threshold": _("τ must be 0 cells/µL or more.")})
    if "regeneration_window_days" in changes and int(changes["regeneration_window_days"]) < 1:
        raise ValidationError({"regeneration_window_days": _("W must be at least 1 day.")})
    if "crs_outcome_window" in changes and not 0 <= int(changes["crs_outcome_window"]) <= MAX_DAY:
        raise ValidationError(
            {"crs_outcome_window": _("The window must be 0–%(max)d days.") % {"max": MAX_DAY}}
        )
    if "usual_units" in changes:
        # The analytes named are set; the others keep their usual unit.
        merged = {**(params.usual_units or {}), **changes["usual_units"]}
        changes["usual_units"] = _validate_usual_units(merged)
    changed = {f for f, v in changes.items() if getattr(params, f) != v}
    for f, v in changes.items():
        setattr(params, f, v)
    recompute = bool(changed - SITE_FIELDS_WITHOUT_RECOMPUTE)
    if recompute and ScoreModel.objects.being_activated().exists():
        raise ValidationError(
            _("A score model is being activated: change the site parameters when it has finished."),
            code="activation_running",
        )
    params.version += 1
    _save(params, user=user, reason=reason)
    return params, recompute
