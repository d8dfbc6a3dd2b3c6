"""Patients and their infusion (SPEC 2.1, 2.2): registration, update, and their checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from crsrisk.writes import NeedsConfirmation, site_today, site_zone
from crsrisk.writes import check_version as _check_version
from crsrisk.writes import require_reason as _require_reason
from crsrisk.writes import save_with_history as _save
from patients.models import (
    MRN_VALIDATOR,
    CareTeam,
    ClinicalEvent,
    Comparator,
    Infusion,
    Observation,
    Patient,
    SiteParameters,
    validate_display_text,
)
from patients.services._common import lock_patient, recompute_patient
from scoring.i18n import error_text
from scoring.rules import units
from scoring.rules.days import MAX_DAY, MIN_DAY, day_of, day_of_date

# A planned infusion further ahead than this is taken for a typo (a year or a month wrong);
# apheresis and manufacturing put registration weeks, not many months, before day 0.
PLANNED_INFUSION_MAX_DAYS = 180
# An age at infusion outside these years is more often a wrong birth year than a patient:
# asked on a form, noted by a CSV import (CAR-T for B-ALL treats children and adults).
AGE_AT_INFUSION_MIN_YEARS = 1
AGE_AT_INFUSION_MAX_YEARS = 100


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
    recompute_patient(patient)
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
    patient = lock_patient(patient)
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
        recompute_patient(patient)
    return patient
