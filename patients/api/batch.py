"""Several lab values in one request, all or nothing (SPEC 8.4, 9).

A list body of the API and a FHIR bundle both arrive here. Each value is
checked on its own first, so that the refusal names every bad item and its
field; then the values are grouped by patient and collection time, and each
group is one ``lab_panel_record`` call, all inside one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from patients.models import LabResult, Patient, Source
from patients.services import (
    LabEntry,
    NeedsConfirmation,
    check_collected_at,
    lab_panel_record,
    lab_rounding_note,
    lab_unit_note,
    usual_units,
    validate_lab,
)
from scoring.rules.units import format_decimal
from scoring.services import recompute_once

LAB_FIELDS = ("analyte", "value", "unit", "collected_at")


@dataclass(frozen=True)
class LabItem:
    """One lab value of a batch, with where it came from for error messages."""

    where: str  # "" for a single object, "[2]" in a list, "entry[2]" in a bundle
    patient: Patient
    analyte: str
    value: str
    unit: str
    collected_at: datetime
    note: str = ""
    confirmed: bool = False
    # The request's own name of each service field, e.g. "unit" -> "resource.valueQuantity.code".
    fields: Mapping[str, str] = field(default_factory=dict)

    def loc(self, name: str) -> str:
        """The error key of one of this item's fields."""
        name = self.fields.get(name, name)
        return f"{self.where}.{name}" if self.where else name


@dataclass
class BatchResult:
    stored: list[LabResult] = field(default_factory=list)
    skipped: list[LabResult] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    # Values stored from a unit other than the site's usual one: said, never asked (SPEC 8.5).
    notes: dict[str, list[str]] = field(default_factory=dict)


class _DryRun(Exception):  # noqa: N818  # control flow: roll back a complete dry run
    pass


def _add(errors: dict[str, list[str]], key: str, messages: Sequence[str]) -> None:
    errors.setdefault(key, []).extend(messages)


def _map_service_errors(exc: ValidationError, item: LabItem, errors: dict[str, list[str]]) -> None:
    if not hasattr(exc, "error_dict"):
        _add(errors, item.where or "non_field_errors", exc.messages)
        return
    for key, messages in exc.message_dict.items():
        name = key if key in LAB_FIELDS else "value"
        _add(errors, item.loc(name), messages)


def precheck(
    items: Sequence[LabItem], *, allow_exponent: bool = False
) -> tuple[list[tuple[LabItem, Any]], list[LabResult]]:
    """Validate every item alone; drop exact repeats of stored values; raise on any error."""
    errors: dict[str, list[str]] = {}
    usual = usual_units()
    checked: list[tuple[LabItem, Any]] = []
    skipped: list[LabResult] = []
    seen: dict[tuple[int, str, datetime], tuple[LabItem, Any]] = {}
    for item in items:
        try:
            v = validate_lab(
                analyte=item.analyte,
                value_text=item.value,
                unit=item.unit,
                usual_units=usual,
                allow_exponent=allow_exponent,
            )
        except ValidationError as exc:
            _map_service_errors(exc, item, errors)
            v = None
        try:
            check_collected_at(item.patient, item.collected_at)
        except ValidationError as exc:
            _add(errors, item.loc("collected_at"), exc.messages)
            continue
        if v is None:
            continue
        key = (item.patient.pk, v.analyte, item.collected_at)
        if key in seen:
            first, first_v = seen[key]
            if (first_v.value, first_v.comparator) != (v.value, v.comparator):
                _add(
                    errors,
                    item.loc("collected_at"),
                    [
                        f"{v.analyte} of {item.patient.mrn} at this collection time is also given "
                        f"at {first.where or 'another item'} with a different value."
                    ],
                )
            continue  # an exact repeat within the request counts once
        seen[key] = (item, v)
        checked.append((item, v))
    # Values already stored: an identical one is skipped, a different one is a conflict (SPEC 8.2).
    stored = {
        (lab.patient_id, lab.analyte, lab.collected_at): lab
        for lab in LabResult.objects.active().filter(
            patient_id__in={i.patient.pk for i, _ in checked},
            collected_at__in={i.collected_at for i, _ in checked},
        )
    }
    fresh = []
    for item, v in checked:
        lab = stored.get((item.patient.pk, v.analyte, item.collected_at))
        if lab is None:
            fresh.append((item, v))
        elif (Decimal(lab.value), lab.comparator) == (v.value, v.comparator):
            skipped.append(lab)
        else:
            _add(
                errors,
                item.loc("value"),
                [
                    f"{v.analyte} at this collection time is already stored as "
                    f"{lab.comparator}{format_decimal(Decimal(lab.value))} {lab.canonical_unit} "
                    f"(lab id {lab.pk}, version {lab.version}): correct that value instead."
                ],
            )
    if errors:
        raise ValidationError(errors)
    return fresh, skipped


def record_lab_items(
    *,
    user: Any,
    items: Sequence[LabItem],
    source: str = Source.API,
    dry_run: bool = False,
    allow_exponent: bool = False,
) -> BatchResult:
    """Store every item or none; raise ValidationError or NeedsConfirmation keyed by item.

    A value in a unit other than the site's usual one is stored with a note in
    ``BatchResult.notes``: a lab system sends its units deliberately (SPEC 8.5).
    """
    fresh, skipped = precheck(items, allow_exponent=allow_exponent)
    usual = usual_units()
    result = BatchResult(skipped=skipped)
    groups: dict[tuple[int, datetime], list[tuple[LabItem, Any]]] = defaultdict(list)
    for item, v in fresh:
        groups[(item.patient.pk, item.collected_at)].append((item, v))
    errors: dict[str, list[str]] = {}
    unconfirmed: dict[str, list[str]] = {}
    try:
        # One transaction; each patient is recomputed once, after all its groups.
        with transaction.atomic(), recompute_once():
            # In time order, so that each 10-fold check sees the values sent before it.
            for (_pid, collected_at), pairs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                by_code = {v.analyte: item for item, v in pairs}
                group = [item for item, _v in pairs]
                entries = [LabEntry(i.analyte, i.value, i.unit, i.note) for i in group]
                kwargs = {"user": user, "patient": group[0].patient, "collected_at": collected_at}
                try:
                    rows = lab_panel_record(
                        **kwargs,
                        entries=entries,
                        confirmed=all(i.confirmed for i in group),
                        source=source,
                        allow_exponent=allow_exponent,
                    )
                except NeedsConfirmation as exc:
                    for code, messages in exc.warnings.items():
                        if not by_code[code].confirmed:
                            _add(unconfirmed, by_code[code].loc("value"), messages)
                    # Store the group anyway, so later 10-fold checks see it; rolled back below.
                    rows = lab_panel_record(
                        **kwargs,
                        entries=entries,
                        confirmed=True,
                        source=source,
                        allow_exponent=allow_exponent,
                    )
                except ValidationError as exc:
                    for key, messages in exc.message_dict.items():
                        targets = [by_code[key]] if key in by_code else group
                        for item in targets:
                            name = "collected_at" if key in ("collected_at", "__all__") else "value"
                            _add(errors, item.loc(name), messages)
                    continue
                for row in rows:
                    if row.flags:
                        result.warnings[by_code[row.analyte].loc("value")] = list(row.flags)
                    notes = [lab_unit_note(row, usual), lab_rounding_note(row)]
                    if notes := [n for n in notes if n]:
                        result.notes[by_code[row.analyte].loc("value")] = notes
                result.stored.extend(rows)
            if errors:
                raise ValidationError(errors)
            if unconfirmed:
                raise NeedsConfirmation(unconfirmed)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return result
