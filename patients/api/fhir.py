"""FHIR R4 import: a Bundle of LOINC-coded Observations becomes lab values (SPEC 8.4).

Resources are checked against the FHIR model of ``fhir.resources`` (its R4B
package, whose Observation and Bundle match R4 for everything read here), then
mapped:

- the analyte from ``code.coding[]`` with system ``http://loinc.org`` (SPEC 2.2 LOINC table;
  high-sensitivity CRP 30522-7 is refused);
- the patient from ``subject.identifier.value`` or ``subject.reference``
  ``Patient?identifier=[system|]MRN``;
- the time from ``effectiveDateTime`` (a bare date means 12:00 site time, as in CSV) or
  ``effectiveInstant``;
- the value from ``valueQuantity``: ``value``, optional ``comparator``, and the UCUM
  ``code`` (or ``unit`` when no UCUM code is given).

All or nothing: any bad entry refuses the whole bundle, and the refusal names every
bad entry by its index and path. Patient entries, such as those of an exported bundle,
are checked against the FHIR model and otherwise left alone: patients are registered,
not imported.

The export (``export_patient_bundle``) writes the other way: one patient and every live
lab value as a ``collection`` Bundle that this import reads back unchanged.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from django.core.exceptions import ValidationError
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation as FhirObservation
from fhir.resources.R4B.patient import Patient as FhirPatient
from pydantic import ValidationError as PydanticValidationError

from crsrisk.accounts.access import log_access
from crsrisk.accounts.roles import visible_patients
from patients.api.batch import LabItem, precheck, record_lab_items
from patients.imports import record_transfer
from patients.models import LabResult, Patient, Sex, Source, TransferDirection
from scoring.rules import units
from scoring.services import site_zone

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
BUNDLE_TYPES = ("batch", "transaction", "collection")
# Results that are still valid; "preliminary", "cancelled" and "entered-in-error" are refused.
OBSERVATION_STATUSES = ("final", "amended", "corrected")
COMPARATORS = ("<", "<=", ">=", ">")
BARE_DATE_TIME = time(12)  # a bare date means 12:00 site time, as in labs.csv (SPEC 8.2)
_IDENTIFIER_REFERENCE = re.compile(r"^Patient\?identifier=(?:[^|]*\|)?(?P<mrn>[^|&]+)$")


@dataclass(frozen=True)
class ParsedObservation:
    """One Observation entry, mapped to the values the lab services read."""

    where: str
    mrn: str
    loinc: str
    value: str
    unit: str
    unit_path: str
    collected_at: datetime
    note: str


@dataclass
class FhirResult:
    entries: int = 0
    stored: int = 0
    skipped: int = 0
    patients: list[str] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False


def _add(errors: dict[str, list[str]], key: str, message: str) -> None:
    errors.setdefault(key, []).append(message)


def _pydantic_errors(exc: PydanticValidationError, prefix: str, errors: dict[str, list[str]]) -> None:
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        _add(errors, f"{prefix}.{path}" if path else prefix, str(err["msg"]).removeprefix("Value error, "))


def _analyte(obs: FhirObservation) -> str:
    """The first LOINC coding of the table of SPEC 2.2; raise ValueError with the reason."""
    loincs = [c.code for c in (obs.code.coding or []) if c.system == LOINC_SYSTEM and c.code]
    if not loincs:
        raise ValueError(f"code needs a coding with system {LOINC_SYSTEM} and a LOINC code.")
    first_error = None
    for code in loincs:
        try:
            units.resolve_analyte(code)
        except units.AnalyteError as exc:
            first_error = first_error or exc
            if code.strip() == units.HS_CRP_LOINC:
                raise ValueError(str(exc)) from exc
            continue
        return code
    raise ValueError(str(first_error))


def _mrn(obs: FhirObservation) -> str:
    subject = obs.subject
    if subject is not None and subject.identifier is not None and subject.identifier.value:
        return subject.identifier.value.strip()
    if subject is not None and subject.reference:
        match = _IDENTIFIER_REFERENCE.match(unquote(subject.reference.strip()))
        if match:
            return match.group("mrn").strip()
    raise ValueError(
        "Identify the patient by MRN: subject.identifier.value, or subject.reference "
        '"Patient?identifier=<system>|<MRN>". Server ids such as "Patient/123" are not known here.'
    )


def _collected_at(obs: FhirObservation) -> datetime:
    when: Any = obs.effectiveDateTime or obs.effectiveInstant
    if isinstance(when, datetime):
        return when
    if isinstance(when, date):
        return datetime.combine(when, BARE_DATE_TIME, tzinfo=site_zone())
    if when:
        raise ValueError(f"effectiveDateTime {when!r} is not precise enough: give at least a full date.")
    raise ValueError("effectiveDateTime is required (a date-time with offset, or a date).")


def _quantity(obs: FhirObservation) -> tuple[str, str, str]:
    """Return (value text with comparator, unit, path of the unit)."""
    q = obs.valueQuantity
    if q is None:
        raise ValueError("A valueQuantity is required; other value[x] types are not accepted.")
    if q.value is None:
        raise ValueError("valueQuantity.value is required.")
    comparator = q.comparator or ""
    if comparator not in ("", *COMPARATORS):
        raise ValueError(f"comparator {comparator!r} is not one of {', '.join(COMPARATORS)}.")
    if q.code and q.system in (None, UCUM_SYSTEM):
        unit, path = q.code, "valueQuantity.code"
    elif q.unit:
        unit, path = q.unit, "valueQuantity.unit"
    else:
        raise ValueError("valueQuantity needs a UCUM code (system http://unitsofmeasure.org) or a unit.")
    return f"{comparator}{format(Decimal(q.value), 'f')}", unit, path


def parse_bundle(data: Any) -> tuple[list[ParsedObservation], dict[str, list[str]], int]:
    """Map every entry; return the good ones, the errors of the bad ones, and the entry count."""
    errors: dict[str, list[str]] = {}
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise ValidationError({"resourceType": "The body must be a FHIR Bundle (resourceType Bundle)."})
    try:
        Bundle.model_validate({k: v for k, v in data.items() if k != "entry"})
    except PydanticValidationError as exc:
        _pydantic_errors(exc, "bundle", errors)
    if data.get("type") not in BUNDLE_TYPES:
        _add(
            errors, "type", f"Bundle type must be one of {', '.join(BUNDLE_TYPES)}, not {data.get('type')!r}."
        )
    entries = data.get("entry")
    if not isinstance(entries, list) or not entries:
        _add(errors, "entry", "The bundle has no entries: send at least one Observation.")
        raise ValidationError(errors)
    parsed: list[ParsedObservation] = []
    for i, entry in enumerate(entries):
        where = f"entry[{i}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if kind == "Patient":
            try:  # an exported bundle carries its patient: checked, not imported
                FhirPatient.model_validate(resource)
            except PydanticValidationError as exc:
                _pydantic_errors(exc, f"{where}.resource", errors)
            continue
        if not isinstance(resource, dict) or kind != "Observation":
            _add(
                errors,
                f"{where}.resource",
                f"Only Observation resources (and Patient resources, which are not imported) are "
                f"accepted, not {kind!r}.",
            )
            continue
        try:
            obs = FhirObservation.model_validate(resource)
        except PydanticValidationError as exc:
            _pydantic_errors(exc, f"{where}.resource", errors)
            continue
        if obs.status not in OBSERVATION_STATUSES:
            _add(errors, f"{where}.resource.status", f"Status must be {', '.join(OBSERVATION_STATUSES)}.")
        values: dict[str, Any] = {}
        for path, read in (
            ("code", _analyte),
            ("subject", _mrn),
            ("effectiveDateTime", _collected_at),
            ("valueQuantity", _quantity),
        ):
            try:
                values[path] = read(obs)
            except ValueError as exc:
                _add(errors, f"{where}.resource.{path}", str(exc))
        if len(values) < 4 or f"{where}.resource.status" in errors:
            continue
        value, unit, unit_path = values["valueQuantity"]
        notes = [n.text for n in (obs.note or []) if n.text]
        note = "; ".join(([f"FHIR Observation/{obs.id}"] if obs.id else []) + notes)
        parsed.append(
            ParsedObservation(
                where=where,
                mrn=values["subject"],
                loinc=values["code"],
                value=value,
                unit=unit,
                unit_path=unit_path,
                collected_at=values["effectiveDateTime"],
                note=note,
            )
        )
    return parsed, errors, len(entries)


def import_bundle(
    data: Any, *, user: Any = None, request: Any = None, dry_run: bool = False, filename: str = ""
) -> FhirResult:
    """Store every Observation of a bundle or none (source ``fhir``), and audit the attempt.

    With a ``request``, only patients of the user's care teams are found, and an
    unknown MRN is written to the access log as a refused access. Every attempt, refused and
    dry runs too, is a ``DataTransfer`` of kind ``fhir`` (SPEC 8.2: every import is audited).
    """
    try:
        result = _import_bundle(data, user=user, request=request, dry_run=dry_run)
    except ValidationError as exc:
        refused = {re.match(r"entry\[(\d+)\]", key) for key in exc.message_dict}
        record_transfer(
            user=user,
            direction=TransferDirection.IMPORT,
            kind="fhir",
            filename=filename,
            refused=len({m.group(1) for m in refused if m}) or 1,
            dry_run=dry_run,
            accepted=False,
        )
        raise
    record_transfer(
        user=user,
        direction=TransferDirection.IMPORT,
        kind="fhir",
        filename=filename,
        created=result.stored,
        skipped=result.skipped,
        patients=len(result.patients),
        dry_run=dry_run,
    )
    return result


def _import_bundle(data: Any, *, user: Any, request: Any, dry_run: bool) -> FhirResult:
    parsed, errors, count = parse_bundle(data)
    pool = visible_patients(request.user) if request is not None else Patient.objects.all()
    mrns = {p.mrn for p in parsed}
    patients = {p.mrn: p for p in pool.filter(mrn__in=mrns).select_related("infusion")}
    scope = " in your care teams" if request is not None else ""
    for mrn in sorted(mrns - set(patients)):
        if request is not None:
            log_access(request, mrn, "api:fhir", granted=False)
    items = []
    for p in parsed:
        patient = patients.get(p.mrn)
        if patient is None:
            _add(errors, f"{p.where}.resource.subject", f"No patient with MRN {p.mrn}{scope}.")
            continue
        items.append(
            LabItem(
                where=p.where,
                patient=patient,
                analyte=p.loinc,
                value=p.value,
                unit=p.unit,
                collected_at=p.collected_at,
                note=p.note,
                confirmed=True,  # an import stores unusual values flagged, and reports them
                fields={
                    "analyte": "resource.code",
                    "value": "resource.valueQuantity.value",
                    "unit": f"resource.{p.unit_path}",
                    "collected_at": "resource.effectiveDateTime",
                },
            )
        )
    if errors:
        # Check the good entries too, so that the refusal lists every bad one at once.
        try:
            precheck(items, allow_exponent=True)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors.setdefault(key, []).extend(messages)
        raise ValidationError(dict(sorted(errors.items(), key=lambda kv: _entry_order(kv[0]))))
    batch = record_lab_items(user=user, items=items, source=Source.FHIR, dry_run=dry_run, allow_exponent=True)
    return FhirResult(
        entries=count,
        stored=len(batch.stored),
        skipped=len(batch.skipped),
        patients=sorted({i.patient.mrn for i in items}),
        warnings=batch.warnings,
        notes=batch.notes,
        dry_run=dry_run,
    )


def _entry_order(key: str) -> tuple[int, str]:
    match = re.match(r"entry\[(\d+)\]", key)
    return (int(match.group(1)) if match else -1, key)


# --- export ----------------------------------------------------------------------------------

MRN_SYSTEM = "urn:crsrisk:mrn"  # the identifier system of exported MRNs; the import reads any system
MRN_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
LABORATORY = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
GENDERS: dict[str, str] = {Sex.FEMALE: "female", Sex.MALE: "male", Sex.UNKNOWN: "unknown"}
# UCUM writes micro as "u" and powers of ten as "10*"; the canonical "cells/µL" is "/uL".
_UCUM_SPELLING = (("cells/", "/"), ("µ", "u"), ("10^", "10*"))
_URN = uuid.UUID("0b6c1f3e-8d2a-5c1e-9f4b-3a7d2e6c8b10")  # namespace of the entries' fullUrls


def ucum_code(unit: str) -> str:
    """The UCUM code of a canonical unit of SPEC 2.2 (``µg/L`` → ``ug/L``, ``10^9/L`` → ``10*9/L``)."""
    for spelled, ucum in _UCUM_SPELLING:
        unit = unit.replace(spelled, ucum)
    return unit


def _full_url(kind: str, key: object) -> str:
    return f"urn:uuid:{uuid.uuid5(_URN, f'{kind}/{key}')}"


def _patient_resource(patient: Patient) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {"use": "usual", "type": {"coding": [MRN_TYPE]}, "system": MRN_SYSTEM, "value": patient.mrn}
        ],
        "name": [{"text": patient.name}],
        "gender": GENDERS.get(patient.sex, "unknown"),
    }
    if patient.birth_date is not None:
        resource["birthDate"] = patient.birth_date.isoformat()
    return resource


def _observation_resource(lab: LabResult, subject: dict[str, Any], zone: Any) -> dict[str, Any]:
    spec = units.resolve_analyte(lab.analyte)
    quantity: dict[str, Any] = {
        "value": Decimal(lab.value),
        "unit": spec.canonical_unit,
        "system": UCUM_SYSTEM,
        "code": ucum_code(spec.canonical_unit),
    }
    if lab.comparator:
        quantity["comparator"] = lab.comparator
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        # A corrected value is still a valid result; the import reads both.
        "status": "corrected" if lab.version > 1 else "final",
        "category": [{"coding": [LABORATORY]}],
        # The LOINC of the canonical unit, never the one the value arrived with (e.g. pmol/L ferritin).
        "code": {
            "coding": [{"system": LOINC_SYSTEM, "code": units.loinc_for(lab.analyte)}],
            "text": spec.name,
        },
        "subject": subject,
        "effectiveDateTime": timezone.localtime(lab.collected_at, zone).isoformat(),
        "valueQuantity": quantity,
    }
    if lab.note:
        resource["note"] = [{"text": lab.note}]
    return resource


def export_patient_bundle(patient: Patient, *, user: Any = None) -> str:
    """One patient and every live lab value as FHIR R4 JSON: a ``collection`` Bundle (SPEC 8.4).

    Validated against the FHIR model before it is written; the import reads it back unchanged.
    The export is a ``DataTransfer`` of kind ``fhir`` in the audit trail (SPEC 8.2).
    """
    zone = site_zone()
    patient_url = _full_url("Patient", patient.mrn)
    subject = {"reference": patient_url, "identifier": {"system": MRN_SYSTEM, "value": patient.mrn}}
    labs = LabResult.objects.active().filter(patient=patient).order_by("collected_at", "analyte", "pk")
    entries = [{"fullUrl": patient_url, "resource": _patient_resource(patient)}]
    entries += [
        {"fullUrl": _full_url("Observation", lab.pk), "resource": _observation_resource(lab, subject, zone)}
        for lab in labs
    ]
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": timezone.localtime(timezone.now(), zone).isoformat(),
            "entry": entries,
        }
    )
    record_transfer(
        user=user,
        direction=TransferDirection.EXPORT,
        kind="fhir",
        filename=f"{patient.mrn}.fhir.json",
        created=len(entries) - 1,
        patients=1,
    )
    return bundle.model_dump_json(exclude_none=True)
