"""Forms turn typed text into domain values; the services decide what is stored (SPEC 2, 9).

Errors name the field and say what is accepted. Service ``ValidationError``s
are attached back to the fields with :func:`add_service_errors`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from patients.fields import DecimalTextField, IntegerTextField, MrdTextField
from patients.models import (
    MRN_VALIDATOR,
    CareTeam,
    EventKind,
    Hypotension,
    Oxygen,
    Sex,
)
from patients.services import LabEntry, mrd_values, validate_patient_dates
from scoring.i18n import analyte_label, error_text
from scoring.rules import bedside
from scoring.rules.days import localize
from scoring.rules.units import ANALYTES, AnalyteSpec, format_decimal
from scoring.services import site_zone

DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
TIME_WIDGET = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
FLOW_MAX_L_MIN = Decimal(80)  # no oxygen device delivers more; a typo guard
MAX_VASOPRESSORS = 6


def add_service_errors(
    form: forms.Form, exc: ValidationError, field_map: Mapping[str, str] | None = None
) -> None:
    """Attach a service ValidationError to the form: by field where it names one, else to the form."""
    field_map = field_map or {}
    if hasattr(exc, "error_dict"):
        for key, messages in exc.message_dict.items():
            name = field_map.get(key, key)
            target = name if name in form.fields else None
            for message in messages:
                form.add_error(target, message)
    else:
        for message in exc.messages:
            form.add_error(None, message)


def site_datetime(day: date, time: Any) -> datetime:
    """An aware datetime (UTC) from a date and a time typed in site time (SPEC 1)."""
    return localize(datetime.combine(day, time), site_zone())


class CollectedAtForm(forms.Form):
    """A collection date and time in site time; a daylight-saving gap or fold is refused."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        day, time = cleaned.get("collected_date"), cleaned.get("collected_time")
        if day is not None and time is not None:
            try:
                site_datetime(day, time)
            except ValueError as exc:
                self.add_error("collected_time", error_text(exc))
        return cleaned


class VersionedForm(forms.Form):
    """A form that carries the version it edits, for optimistic locking."""

    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=0)


class ReasonForm(VersionedForm):
    """A change to a stored record: it names the version it was made from, and why."""

    # Required: without it a stale edit could not be told from a fresh one (optimistic locking).
    version = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=0,
        error_messages={"required": _("The form lost the record's version: reload the page and try again.")},
    )
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=1000,
        error_messages={"required": _("A reason is required.")},
    )


# --- patients ------------------------------------------------------------------------------


class PatientForm(forms.Form):
    """Demographics and infusion data (SPEC 2.1)."""

    mrn = forms.CharField(
        label=_("MRN"),
        max_length=32,
        validators=[MRN_VALIDATOR],
        help_text=_("1–32 characters: letters, digits, '-' and '_'."),
    )
    name = forms.CharField(label=_("Name"), max_length=200)
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices, initial=Sex.UNKNOWN)
    birth_date = forms.DateField(label=_("Birth date"), required=False, widget=DATE_WIDGET)
    care_team = forms.ModelChoiceField(label=_("Care team"), queryset=CareTeam.objects.none())
    diagnosis = forms.CharField(label=_("Diagnosis"), max_length=100, initial="B-ALL")
    product = forms.CharField(label=_("CAR-T product"), max_length=200, required=False)
    infusion_date = forms.DateField(label=_("Infusion date (day 0)"), widget=DATE_WIDGET)
    lymphodepletion_start = forms.DateField(
        label=_("Lymphodepletion start"), required=False, widget=DATE_WIDGET
    )
    baseline_mrd_pct = MrdTextField(
        label=_("Baseline MRD (%)"),
        required=False,
        help_text=_("Bone-marrow MRD before lymphodepletion: percent of nucleated cells, 0–100."),
    )
    post_ld_mrd_pct = MrdTextField(
        label=_("Post-lymphodepletion MRD (%)"),
        required=False,
        help_text=_("After lymphodepletion and before infusion, 0–100 %."),
    )
    confirm_digest = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, teams: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warnings: list[str] = []  # the age check a confirmation answers
        for name in ("baseline_mrd_pct", "post_ld_mrd_pct"):
            # A stored MRD below detection is shown as it was given: <0.01.
            comparator = self.initial.get(name.replace("_pct", "_comparator"))
            if comparator and self.initial.get(name) is not None:
                self.initial[name] = comparator + format_decimal(Decimal(self.initial[name]))
        care_team = cast(forms.ModelChoiceField, self.fields["care_team"])  # type: ignore[type-arg]  # stubs
        care_team.queryset = teams if teams is not None else CareTeam.objects.none()
        if teams is not None and len(teams) == 1 and not self.is_bound:
            self.initial.setdefault("care_team", teams[0].pk)

    def clean(self) -> dict[str, Any]:
        # The services' date rules too, so one answer lists every mistake (SPEC 9).
        cleaned = super().clean() or {}
        if cleaned.get("infusion_date") is not None:
            try:
                validate_patient_dates(cleaned)
            except ValidationError as exc:
                add_service_errors(self, exc)
        return cleaned

    def digest(self) -> str:
        """Fingerprint of the dates a confirmation of the age applies to."""
        payload = [str(self.cleaned_data.get(f)) for f in ("birth_date", "infusion_date")]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]

    def service_values(self) -> dict[str, Any]:
        """The cleaned values the services take (without the confirmation's fingerprint)."""
        values = {k: v for k, v in self.cleaned_data.items() if k != "confirm_digest"}
        mrd_values(values)  # "<0.01": the value and its comparator
        return values


class PatientEditForm(PatientForm):
    """Edit a patient; a reason is required and the version guards against stale edits."""

    version = ReasonForm.base_fields["version"]
    monitoring_end_day = IntegerTextField(
        label=_("End of monitoring (day)"),
        required=False,
        min_value=-30,
        max_value=730,
        help_text=_("The ward list shows the patient until this day; empty means day +90."),
    )
    reason = forms.CharField(
        label=_("Reason for the change"), max_length=1000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, can_set_monitoring: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["mrn"]
        if not can_set_monitoring:
            del self.fields["monitoring_end_day"]


# --- labs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalyteRow:
    """One analyte line of the panel form."""

    spec: AnalyteSpec
    value: forms.BoundField
    unit: forms.BoundField
    warnings: list[str]

    @property
    def label(self) -> str:
        return analyte_label(self.spec.code)

    @property
    def name(self) -> str:
        return gettext(self.spec.name)

    @property
    def errors(self) -> list[str]:
        return [*self.value.errors, *self.unit.errors]


def unit_select(spec: AnalyteSpec) -> forms.Select:
    """The unit choices of an analyte, with the factors that static/js/units.js previews with."""
    factors = {f.display: [str(f.multiply), str(f.divide)] for f in spec.units.values()}
    attrs = {
        "data-unit-factors": json.dumps(factors, ensure_ascii=False),
        "data-canonical-unit": spec.canonical_unit,
    }
    return forms.Select(choices=[(u, u) for u in spec.accepted_units], attrs=attrs)


class LabPanelForm(CollectedAtForm):
    """All analytes of one collection time, each with its unit (SPEC 2.2)."""

    collected_date = forms.DateField(label=_("Collection date"), widget=DATE_WIDGET)
    collected_time = forms.TimeField(label=_("Collection time"), widget=TIME_WIDGET)
    note = forms.CharField(label=_("Note"), required=False, max_length=1000)
    confirm_digest = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, usual_units: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warnings: dict[str, list[str]] = {}
        usual_units = usual_units or {}
        for code, spec in ANALYTES.items():
            self.fields[f"{code}_value"] = forms.CharField(
                label=analyte_label(code),
                required=False,
                max_length=64,
                widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 10}),
            )
            # A plain CharField rendered as a select: any posted unit reaches the unit rules,
            # which refuse it with the list of accepted units (SPEC 2.2).
            self.fields[f"{code}_unit"] = forms.CharField(
                label=_("Unit of %(analyte)s") % {"analyte": analyte_label(code)},
                required=False,
                max_length=32,
                initial=usual_units.get(code) or spec.canonical_unit,
                widget=unit_select(spec),
            )

    def analyte_rows(self) -> Iterator[AnalyteRow]:
        for code, spec in ANALYTES.items():
            yield AnalyteRow(spec, self[f"{code}_value"], self[f"{code}_unit"], self.warnings.get(code, []))

    def collected_at(self) -> datetime:
        return site_datetime(self.cleaned_data["collected_date"], self.cleaned_data["collected_time"])

    def entries(self) -> list[LabEntry]:
        note = self.cleaned_data.get("note", "")
        return [
            LabEntry(
                analyte=code,
                value=self.cleaned_data.get(f"{code}_value", ""),
                unit=self.cleaned_data.get(f"{code}_unit", ""),
                note=note,
            )
            for code in ANALYTES
            if (self.cleaned_data.get(f"{code}_value") or "").strip()
        ]

    def digest(self) -> str:
        """Fingerprint of the values a confirmation applies to; changed values need a new one."""
        payload = {
            "at": self.collected_at().isoformat(),
            "entries": [(e.analyte, e.value.strip(), e.unit.strip()) for e in self.entries()],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]

    def field_map(self) -> dict[str, str]:
        mapping = {code: f"{code}_value" for code in ANALYTES}
        mapping["collected_at"] = "collected_date"
        return mapping


class LabCorrectForm(ReasonForm, CollectedAtForm):
    """Correct one lab value; the previous value stays in the history (SPEC 2.2)."""

    value = forms.CharField(
        label=_("Value"),
        max_length=64,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    unit = forms.CharField(label=_("Unit"), required=False, max_length=32)
    collected_date = forms.DateField(label=_("Collection date"), widget=DATE_WIDGET)
    collected_time = forms.TimeField(label=_("Collection time"), widget=TIME_WIDGET)
    confirm_digest = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, analyte: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec = ANALYTES[analyte]
        self.fields["unit"].widget = unit_select(spec)
        self.fields["unit"].initial = spec.canonical_unit
        self.warnings: list[str] = []

    def collected_at(self) -> datetime:
        return site_datetime(self.cleaned_data["collected_date"], self.cleaned_data["collected_time"])

    def digest(self) -> str:
        payload = [
            self.cleaned_data["value"].strip(),
            self.cleaned_data.get("unit", ""),
            self.collected_at().isoformat(),
        ]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]


class VoidForm(ReasonForm):
    """Void a row with a reason; it stops counting but is never deleted."""


# --- observations --------------------------------------------------------------------------

OXYGEN_DEVICES = [
    ("none", _("Room air (no oxygen)")),
    ("nasal_cannula", _("Nasal cannula")),
    ("blow_by", _("Blow-by")),
    ("facemask", _("Facemask")),
    ("non_rebreather", _("Non-rebreather mask")),
    ("venturi", _("Venturi mask")),
    ("cpap", _("CPAP")),
    ("bipap", _("BiPAP")),
    ("intubation", _("Intubation and mechanical ventilation")),
]
RECORDED_DEVICE = "recorded"


def oxygen_category(device: str, flow_l_min: Decimal | None) -> str:
    """The ASTCT oxygen category of a device and flow (SPEC 2.3); a refusal is keyed to the flow."""
    try:
        return bedside.oxygen_category(device, flow_l_min)
    except bedside.OxygenFlowError as exc:
        raise ValidationError({"oxygen_flow": error_text(exc)}) from exc


hypotension_category = bedside.hypotension_category
sbp_norm_mmhg = bedside.sbp_norm_mmhg


class ObservationForm(VersionedForm):
    """A day's bedside observation; devices and vasopressors become ASTCT categories."""

    date = forms.DateField(label=_("Date"), widget=DATE_WIDGET)
    tmax_c = DecimalTextField(
        label=_("Highest temperature (°C)"),
        required=False,
        min_value=Decimal("30.0"),
        max_value=Decimal("45.0"),
        decimal_places=1,
        unit="°C",
        help_text=_("30.0–45.0 °C, or leave empty if not measured."),
    )
    oxygen_device = forms.ChoiceField(label=_("Oxygen device"), choices=OXYGEN_DEVICES, initial="none")
    oxygen_flow = DecimalTextField(
        label=_("Oxygen flow (L/min)"),
        required=False,
        min_value=0,
        max_value=FLOW_MAX_L_MIN,
        decimal_places=1,
        unit="L/min",
        help_text=_("Needed for a nasal cannula: ≤ 6 L/min is low flow, > 6 L/min high flow."),
    )
    vasopressors = IntegerTextField(
        label=_("Vasopressors other than vasopressin"),
        min_value=0,
        max_value=MAX_VASOPRESSORS,
        initial=0,
    )
    vasopressin = forms.BooleanField(label=_("Vasopressin given"), required=False)
    hypotension_without_vasopressors = forms.BooleanField(
        label=_("Hypotension not needing vasopressors"), required=False
    )
    antipyretic = forms.BooleanField(label=_("Antipyretic given"), required=False)
    tocilizumab = forms.BooleanField(label=_("Tocilizumab given"), required=False)
    corticosteroids = forms.BooleanField(label=_("Corticosteroids given"), required=False)
    note = forms.CharField(label=_("Note"), required=False, max_length=1000)
    reason = forms.CharField(
        label=_("Reason for the change"),
        required=False,
        max_length=1000,
        help_text=_("Required when you change a day that is already recorded."),
    )

    def __init__(self, *args: Any, recorded_oxygen: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded_oxygen = recorded_oxygen
        if recorded_oxygen:
            label = _("As recorded: %(category)s") % {"category": Oxygen(recorded_oxygen).label}
            device = cast(forms.ChoiceField, self.fields["oxygen_device"])
            device.choices = [(RECORDED_DEVICE, label), *OXYGEN_DEVICES]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        device = data.get("oxygen_device")
        if device == RECORDED_DEVICE and self.recorded_oxygen:
            data["oxygen"] = self.recorded_oxygen
        elif device:
            try:
                data["oxygen"] = oxygen_category(device, data.get("oxygen_flow"))
            except ValidationError as exc:
                add_service_errors(self, exc)
        given = (data.get("vasopressors") or 0) > 0 or data.get("vasopressin", False)
        if given and data.get("hypotension_without_vasopressors"):
            self.add_error(
                "hypotension_without_vasopressors",
                _(
                    "Vasopressors are entered, so the hypotension did need them: untick this box, "
                    "or set the vasopressors to 0."
                ),
            )
        if data.get("vasopressors") is not None:
            data["hypotension"] = hypotension_category(
                data["vasopressors"],
                data.get("vasopressin", False),
                data.get("hypotension_without_vasopressors", False),
            )
        return data

    def values(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "tmax_c": d.get("tmax_c"),
            "hypotension": d["hypotension"],
            "oxygen": d["oxygen"],
            "antipyretic": d.get("antipyretic", False),
            "tocilizumab": d.get("tocilizumab", False),
            "corticosteroids": d.get("corticosteroids", False),
        }


def observation_initial(obs: Any) -> dict[str, Any]:
    """Pre-fill the form from a recorded day (the categories map back losslessly)."""
    vasopressors = {"one_vasopressor": 1, "multiple_vasopressors": 2}.get(obs.hypotension, 0)
    return {
        "date": obs.date,
        "tmax_c": obs.tmax_c,
        "oxygen_device": RECORDED_DEVICE if obs.oxygen != Oxygen.NONE else "none",
        "vasopressors": vasopressors,
        "hypotension_without_vasopressors": obs.hypotension == Hypotension.NO_VASOPRESSOR,
        "antipyretic": obs.antipyretic,
        "tocilizumab": obs.tocilizumab,
        "corticosteroids": obs.corticosteroids,
        "note": obs.note,
        "version": obs.version,
    }


# --- events, overrides, alerts, site parameters --------------------------------------------

EVENT_DETAIL_CHOICES = [
    ("", _("— none —")),
    ("crs", _("death from CRS")),
    ("other", _("death from another cause")),
    ("anti_leukemic", _("anti-leukemic (chemotherapy, targeted agent, second CAR-T)")),
    ("immunomodulatory", _("immunomodulatory (interferon, IL-2)")),
]


class EventForm(forms.Form):
    """A clinical event or outcome (SPEC 2.4)."""

    kind = forms.ChoiceField(label=_("Event"), choices=EventKind.choices)
    date = forms.DateField(label=_("Date"), widget=DATE_WIDGET)
    detail = forms.ChoiceField(
        label=_("Detail"),
        choices=EVENT_DETAIL_CHOICES,
        required=False,
        help_text=_("Required for a death (CRS or other) and for preemptive therapy (its type)."),
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=1000)


class OverrideForm(forms.Form):
    """A hematologist's CRS grade for one day, with its reason (SPEC 2.4)."""

    date = forms.DateField(label=_("Date"), widget=DATE_WIDGET)
    grade = forms.TypedChoiceField(
        label=_("Recorded CRS grade"),
        coerce=int,
        choices=[(g, str(g)) for g in range(5)],
        help_text=_("0–4; grade 5 comes only from a recorded death from CRS."),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("For example: fever from a documented infection."),
    )


class AlertAckForm(forms.Form):
    note = forms.CharField(label=_("Acknowledgement note"), max_length=1000)


class SiteParametersForm(ReasonForm):
    """Clinical site parameters (SPEC 8.5); a change recomputes every patient."""

    bcell_threshold = DecimalTextField(
        label=_("B-cell threshold τ (cells/µL)"), min_value=0, max_value=Decimal(999_999), decimal_places=6
    )
    regeneration_window_days = IntegerTextField(
        label=_("Regeneration window W (days)"), min_value=1, max_value=730
    )
    confirm_regeneration = forms.BooleanField(
        label=_("Confirm regeneration with a repeat sample"), required=False
    )
    crs_outcome_window = IntegerTextField(label=_("CRS outcome window (days)"), min_value=0, max_value=730)
    default_care_team = forms.ModelChoiceField(
        label=_("Default care team"), queryset=CareTeam.objects.all(), required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        usual = dict(self.initial.get("usual_units") or {})
        for code, spec in ANALYTES.items():
            self.fields[usual_unit_field(code)] = forms.ChoiceField(
                label=_("Usual unit of %(analyte)s") % {"analyte": analyte_label(code)},
                choices=[(u, u) for u in spec.accepted_units],
                initial=usual.get(code) or spec.canonical_unit,
                required=False,  # not sent: unchanged
                help_text=_(
                    "Preselected on the lab form. A value typed in a unit that converts differently "
                    "asks for confirmation. Changing it recomputes nothing."
                ),
            )

    def usual_unit_fields(self) -> list[forms.BoundField]:
        return [self[usual_unit_field(code)] for code in ANALYTES]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        given = {code: cleaned.pop(usual_unit_field(code), "") for code in ANALYTES}
        cleaned["usual_units"] = {code: unit for code, unit in given.items() if unit}
        return cleaned

    def recomputes(self) -> bool:
        """Whether the change touches a parameter that derived results depend on."""
        quiet = {"version", "reason", *(usual_unit_field(code) for code in ANALYTES)}
        return bool(set(self.changed_data) - quiet)


def usual_unit_field(code: str) -> str:
    return f"usual_unit_{code}"


CORRECTABLE_IMPORTS = ("patients", "labs", "observations")  # events are voided, not corrected


class ImportForm(forms.Form):
    """One CSV file of SPEC 8.2 to preview, and whether it corrects stored rows."""

    kind = forms.ChoiceField(
        label=_("File type"),
        choices=[
            ("patients", _("Patients (patients.csv)")),
            ("labs", _("Labs (labs.csv)")),
            ("observations", _("Observations (observations.csv)")),
            ("events", _("Events (events.csv)")),
        ],
    )
    file = forms.FileField(
        label=_("CSV file"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    correct = forms.BooleanField(
        label=_("Correct stored values"),
        required=False,
        help_text=_(
            "Rows whose key is already stored with other values update the stored rows; the old values "
            "stay in the history. Not available for events."
        ),
    )
    reason = forms.CharField(
        label=_("Reason for the correction"),
        required=False,
        max_length=1000,
        help_text=_("Required with a correction, e.g. the laboratory re-issued these results."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = _(
            "UTF-8, comma-separated, with the header row of the chosen file type "
            "(the same columns as the export); at most %(mb)d MB."
        ) % {"mb": settings.IMPORT_UPLOAD_MAX_BYTES // (1024 * 1024)}

    def clean_file(self) -> Any:
        """The uploaded file (in memory or a temporary file), if it is not over the limit."""
        upload = self.cleaned_data["file"]
        limit = settings.IMPORT_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise ValidationError(
                _(
                    "The file is %(size)s MB; at most %(limit)d MB are accepted. "
                    "Split it, or use the command line."
                ),
                params={"size": f"{upload.size / 1024 / 1024:.1f}", "limit": limit // (1024 * 1024)},
            )
        return upload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        correct, reason = cleaned.get("correct"), (cleaned.get("reason") or "").strip()
        if correct and cleaned.get("kind") not in (None, *CORRECTABLE_IMPORTS):
            self.add_error("correct", _("Events cannot be corrected by import: void the event instead."))
        if correct and not reason:
            self.add_error("reason", _("A correction needs a reason."))
        if reason and not correct:
            self.add_error(
                "reason", _("A reason goes with a correction: tick “Correct stored values” or clear it.")
            )
        cleaned["reason"] = reason
        return cleaned


class ImportConfirmForm(forms.Form):
    """Confirms the previewed file: the digest names the very content that was shown."""

    digest = forms.CharField(widget=forms.HiddenInput, max_length=64)
