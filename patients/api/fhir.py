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
bad entry by its index and path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from django.core.exceptions import ValidationError
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation as FhirObservation
from pydantic import ValidationError as PydanticValidationError

from crsrisk.accounts.access import log_access
from crsrisk.accounts.roles import visible_patients
from patients.api.batch import LabItem, precheck, record_lab_items
from patients.models import Patient, Source
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
        if not isinstance(resource, dict) or resource.get("resourceType") != "Observation":
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            _add(errors, f"{where}.resource", f"Only Observation resources are accepted, not {kind!r}.")
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


def import_bundle(data: Any, *, user: Any = None, request: Any = None, dry_run: bool = False) -> FhirResult:
    """Store every Observation of a bundle or none (source ``fhir``).

    With a ``request``, only patients of the user's care teams are found, and an
    unknown MRN is written to the access log as a refused access.
    """
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
            precheck(items, allow_exponent=False)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors.setdefault(key, []).extend(messages)
        raise ValidationError(dict(sorted(errors.items(), key=lambda kv: _entry_order(kv[0]))))
    batch = record_lab_items(
        user=user, items=items, source=Source.FHIR, dry_run=dry_run, allow_exponent=False
    )
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
