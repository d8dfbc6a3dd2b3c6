"""Lab values (SPEC 2.3, 8): validation, record, correction and void. The one writer of ``LabResult``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crsrisk import store
from crsrisk.writes import NeedsConfirmation, check_not_future_time, site_zone
from crsrisk.writes import check_version as _check_version
from crsrisk.writes import require_reason as _require_reason
from crsrisk.writes import save_with_history as _save
from patients.models import LabResult, Patient, SiteParameters, Source
from patients.services._common import check_day, lock_patient, recompute_patient, void_row
from patients.services.events import check_not_after_death
from scoring.i18n import error_text, localize
from scoring.rules import units
from scoring.rules.days import day_of


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


def usual_units(params: SiteParameters | None = None) -> dict[str, str]:
    """The site's usual unit of every analyte (SPEC 8.5); the canonical unit unless set.

    ``params``: the site parameters read already (else the units are read now).
    """
    if params is not None:
        stored = params.usual_units or {}
    else:
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


def previous_and_recorded(
    patient: Patient, analytes: Sequence[str], at: datetime
) -> tuple[dict[str, Decimal], set[str]]:
    """A panel's checks against stored values, in one statement for the whole panel.

    Returns the patient's latest live, uncensored value of each of ``analytes`` before
    ``at`` (the ×10 jump check; of two at the same time, the later entered), and those of
    ``analytes`` with a live value at ``at`` already (a duplicate, censored or not).
    """
    if not analytes:
        return {}, set()
    table, patient_id, analyte, collected_at, value, comparator, voided_at, pk = store.quoted(
        LabResult, "patient", "analyte", "collected_at", "value", "comparator", "voided_at", "id"
    )
    when = store.db_value(LabResult, "collected_at", at)
    live = f"{patient_id} = %s AND {voided_at} IS NULL"
    # One ``LIMIT 1`` per analyte reads its latest rows through the (patient, analyte,
    # collected_at) index, where a window would sort every lab of the patient. SQLite
    # accepts ORDER BY and LIMIT in an arm of a UNION only inside a subquery.
    latest = (
        f"SELECT {analyte}, {value}, 0 FROM {table} WHERE {live} AND {analyte} = %s "  # noqa: S608
        f"AND {collected_at} < %s AND {comparator} = '' ORDER BY {collected_at} DESC, {pk} DESC LIMIT 1"
    )
    arms = [f"SELECT * FROM ({latest}) AS p{i}" for i in range(len(analytes))]  # noqa: S608
    params: list[Any] = [p for code in analytes for p in (patient.pk, code, when)]
    marks = ", ".join(["%s"] * len(analytes))
    arms.append(
        f"SELECT {analyte}, {value}, 1 FROM {table} "  # noqa: S608
        f"WHERE {live} AND {analyte} IN ({marks}) AND {collected_at} = %s"
    )
    params += [patient.pk, *analytes, when]
    convert = [None, *store.converters(LabResult, ["value"]), None]
    rows = store.fetch(" UNION ALL ".join(arms), params, convert)
    previous: dict[str, Decimal] = {}
    recorded: set[str] = set()
    for code, number, at_same_time in rows:
        if at_same_time:
            recorded.add(code)
        else:
            previous[code] = Decimal(number)
    return previous, recorded


def check_collected_at(patient: Patient, collected_at: datetime, field_name: str = "collected_at") -> int:
    """Return the day of ``collected_at``; refuse naive times and days out of range."""
    if collected_at is None or timezone.is_naive(collected_at):
        raise ValidationError({field_name: _("The collection time is required, with a time zone.")})
    day = day_of(collected_at, site_zone(), patient.infusion.infusion_date)
    check_day(day, field_name)
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
    params: SiteParameters | None = None,
) -> list[LabResult]:
    """Record the analytes of one collection time at once, all or nothing.

    On a form (``source`` form), a value in a unit that converts differently from the
    site's usual unit asks for confirmation, like an unusual value (SPEC 8.5). A lab
    system sends its units deliberately: its value is stored, and the caller reports
    ``lab_unit_note`` of each stored row (see ``patients.api.batch``). The site parameters
    (``params``, else read once here, under the patient's lock) give both the usual units
    and the recompute's parameters.
    """
    patient = lock_patient(patient)
    params = params or SiteParameters.load()
    usual = usual_units(params)
    errors: dict[str, list[str]] = {}
    try:
        check_collected_at(patient, collected_at)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    entries = [e for e in entries if (e.value or "").strip()]
    if not entries and not errors:
        raise ValidationError({"__all__": _("Enter at least one value.")})
    codes: dict[str, str] = {}  # entry.analyte as typed -> its code
    for entry in entries:
        try:
            codes[entry.analyte] = units.resolve_analyte(entry.analyte).code
        except units.AnalyteError as exc:
            errors.setdefault(entry.analyte, []).append(error_text(exc))
    # The panel's checks against stored values, in one query (not one per analyte).
    previous, recorded = (
        ({}, set()) if errors else previous_and_recorded(patient, list(codes.values()), collected_at)
    )
    validated: list[tuple[LabEntry, ValidatedLab]] = []
    warnings: dict[str, list[str]] = {}
    seen: set[str] = set()
    for entry in entries:
        if entry.analyte not in codes:
            continue
        spec = units.ANALYTES[codes[entry.analyte]]
        if spec.code in seen:
            errors.setdefault(spec.code, []).append(
                _("%(analyte)s is entered twice in this panel.") % {"analyte": localize(spec.label)}
            )
            continue
        seen.add(spec.code)
        try:
            v = validate_lab(
                analyte=entry.analyte,
                value_text=entry.value,
                unit=entry.unit,
                previous=previous.get(spec.code),
                field_name=spec.code,
                usual_units=usual,
                allow_exponent=allow_exponent,
            )
        except ValidationError as exc:
            for k, msgs in exc.message_dict.items():
                errors.setdefault(k, []).extend(msgs)
            continue
        if v.analyte in recorded:
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
    entered_by = user if getattr(user, "is_authenticated", False) else None
    rows = [
        LabResult(
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
            entered_by=entered_by,
            entered_at=now,
        )
        for entry, v in validated
    ]
    # The rows and their history rows ("+", "entered") in two INSERTs, as save_with_history
    # would store them one by one, and as bulk_create_with_history did, without the ORM's
    # compilation of each value of each row (a third of the POST's writing time).
    names = [f.attname for f in LabResult._meta.concrete_fields if not f.primary_key]
    ids = store.insert_returning(LabResult, names, [[getattr(row, n) for n in names] for row in rows])
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk
        row._state.adding, row._state.db = False, connection.alias
    history_user = entered_by or LabResult.history.model.get_default_history_user(rows[0])
    store.insert_created_history(
        LabResult, ids, now=timezone.now(), reason="entered", user_id=getattr(history_user, "pk", None)
    )
    recompute_patient(patient, since=collected_at, params=params)
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
    patient = lock_patient(lab.patient)
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
    recompute_patient(patient, since=earliest)
    return lab


@transaction.atomic
def lab_void(*, user: Any, lab: LabResult, expected_version: int | None, reason: str) -> LabResult:
    """Void a lab value with a reason; it stops counting but is never deleted."""
    return void_row(lab, user=user, expected_version=expected_version, reason=reason, what=_("lab value"))
