"""JSON shapes of the API (SPEC 8.4). Input serializers parse; services validate and write."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from patients.models import (
    MRD_DECIMAL_PLACES,
    MRD_MAX_DIGITS,
    ClinicalEvent,
    Comparator,
    EventKind,
    GradeOverride,
    Hypotension,
    LabResult,
    Observation,
    Oxygen,
    Patient,
    Sex,
)
from patients.services import MrdValue, mrd_notes
from scoring.models import Band, DailyAssessment, PatientSummary
from scoring.rules.units import format_decimal

REASON_HELP = "Why the record changes; kept in the audit trail."
VERSION_HELP = "The version you read; a stale version is refused with 409."


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(Decimal(value))


# --- patients ------------------------------------------------------------------------------


class PatientSerializer(serializers.ModelSerializer):
    """A patient with their infusion (day 0)."""

    care_team = serializers.CharField(source="care_team.name")
    product = serializers.CharField(source="infusion.product")
    infusion_date = serializers.DateField(source="infusion.infusion_date")
    lymphodepletion_start = serializers.DateField(source="infusion.lymphodepletion_start", allow_null=True)
    baseline_mrd_pct = serializers.DecimalField(
        source="infusion.baseline_mrd_pct",
        max_digits=MRD_MAX_DIGITS,
        decimal_places=MRD_DECIMAL_PLACES,
        allow_null=True,
    )
    baseline_mrd_comparator = serializers.CharField(
        source="infusion.baseline_mrd_comparator", help_text='"<" when reported below detection, else "".'
    )
    post_ld_mrd_pct = serializers.DecimalField(
        source="infusion.post_ld_mrd_pct",
        max_digits=MRD_MAX_DIGITS,
        decimal_places=MRD_DECIMAL_PLACES,
        allow_null=True,
    )
    post_ld_mrd_comparator = serializers.CharField(
        source="infusion.post_ld_mrd_comparator", help_text='"<" when reported below detection, else "".'
    )

    class Meta:
        model = Patient
        fields = [
            "mrn",
            "name",
            "sex",
            "birth_date",
            "care_team",
            "diagnosis",
            "product",
            "infusion_date",
            "lymphodepletion_start",
            "baseline_mrd_pct",
            "baseline_mrd_comparator",
            "post_ld_mrd_pct",
            "post_ld_mrd_comparator",
            "monitoring_end_day",
            "synthetic",
            "version",
        ]
        read_only_fields = fields


@extend_schema_field(OpenApiTypes.STR)
class MrdField(serializers.Field):
    """An MRD percentage: 0.5, "0.5", "6.5E-04", or "<0.01" below detection.

    Validated to ``services.MrdValue``: more than 10 decimal places are rounded half-even,
    and that, or a value below 0.0001 %, is said in the answer's ``notes``.
    """

    default_error_messages = {"invalid": 'An MRD is a number (percent), or a string such as "<0.01".'}

    def to_internal_value(self, data: Any) -> MrdValue:
        if isinstance(data, bool) or not isinstance(data, (str, int, float, Decimal)):
            self.fail("invalid")
        text = data if isinstance(data, str) else str(data)
        try:
            comparator, value, notes = mrd_notes("mrd", text, allow_exponent=True)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return MrdValue(value, comparator, notes)

    def to_representation(self, value: Any) -> Any:  # pragma: no cover - input only
        return value


class _PatientFields(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    sex = serializers.ChoiceField(choices=Sex.choices, default=Sex.UNKNOWN)
    birth_date = serializers.DateField(allow_null=True, required=False)
    care_team = serializers.CharField(
        max_length=100, required=False, help_text="Name of one of your care teams."
    )
    diagnosis = serializers.CharField(max_length=100, default="B-ALL")
    product = serializers.CharField(max_length=200, allow_blank=True, default="")
    infusion_date = serializers.DateField(help_text="Day 0.")
    lymphodepletion_start = serializers.DateField(allow_null=True, required=False)
    baseline_mrd_pct = MrdField(allow_null=True, required=False)
    post_ld_mrd_pct = MrdField(allow_null=True, required=False)
    confirm = serializers.BooleanField(
        default=False,
        help_text="Store an age at infusion under 1 or over 100 years (otherwise 422 with warnings).",
    )


class PatientCreateSerializer(_PatientFields):
    mrn = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,32}$",
        max_length=32,
        error_messages={"invalid": "MRN must be 1–32 characters of A–Z, a–z, 0–9, '-' and '_'."},
    )


class PatientUpdateSerializer(_PatientFields):
    version = serializers.IntegerField(min_value=1, help_text=VERSION_HELP)
    reason = serializers.CharField(help_text=REASON_HELP)
    monitoring_end_day = serializers.IntegerField(
        allow_null=True, required=False, help_text="Hematologists only: day monitoring ends."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only what is sent changes; version and reason are always required.
        for name, f in self.fields.items():
            if name not in ("version", "reason", "confirm"):
                f.required, f.default = False, empty


# --- labs ----------------------------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}], "example": "<1"})
class LabValueField(serializers.Field):
    """A number, or a text such as "12.5", "<1" or ">=180"; kept as text for the services."""

    default_error_messages = {"invalid": "Enter a number, or a text such as 12.5, <1 or >180."}

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        if isinstance(data, float):
            # repr() is the shortest text that round-trips; "f" avoids exponents such as 1e-07.
            return format(Decimal(repr(data)), "f")
        return str(data) if isinstance(data, int) else data

    def to_representation(self, value: Any) -> str:
        return str(value)


@extend_schema_field({"oneOf": [{"type": "number"}, {"type": "string"}], "nullable": True, "example": 38.5})
class TmaxField(LabValueField):
    """Tmax in °C as a number or its text, checked by the services (range, one decimal).

    Not a ``DecimalField``: its messages ("no more than 1 decimal places") neither repeat the
    value nor say what is accepted, and the ward form and the import say both.
    """

    default_error_messages = {"invalid": "Tmax is a number in °C, 30.0–45.0, such as 38.5; or null."}


def _merge_comparator(attrs: dict[str, Any]) -> dict[str, Any]:
    """Fold a separate ``comparator`` into the value text, as the services read it."""
    comparator = attrs.pop("comparator", None)
    if comparator:
        if attrs["value"].lstrip()[:1] in ("<", ">", "≤", "≥"):
            raise serializers.ValidationError({"comparator": "Give the comparator once: here or in value."})
        attrs["value"] = comparator + attrs["value"].lstrip()
    return attrs


class LabSerializer(serializers.ModelSerializer):
    """A stored lab value, in the canonical unit."""

    value = serializers.SerializerMethodField()
    unit = serializers.CharField(source="canonical_unit", read_only=True)
    entered_by = serializers.CharField(source="entered_by.username", default=None, read_only=True)

    class Meta:
        model = LabResult
        fields = [
            "id",
            "analyte",
            "comparator",
            "value",
            "unit",
            "collected_at",
            "entered_value",
            "entered_unit",
            "loinc",
            "note",
            "flags",
            "source",
            "entered_by",
            "entered_at",
            "version",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_value(self, obj: LabResult) -> str | None:
        return _decimal_text(obj.value)


class LabInSerializer(serializers.Serializer):
    """One lab value as sent: analyte code or LOINC, value, unit, collection time."""

    analyte = serializers.CharField(max_length=32, help_text="A code (crp, ferritin, …) or a LOINC code.")
    value = LabValueField(help_text='A number, or text with a comparator for censored results: "<1", ">180".')
    comparator = serializers.ChoiceField(
        choices=Comparator.choices, required=False, help_text="Alternative to a prefix in value."
    )
    unit = serializers.CharField(
        max_length=32, allow_blank=True, default="", help_text="Empty: canonical unit."
    )
    collected_at = serializers.DateTimeField(help_text="ISO 8601; without an offset it is site time.")
    note = serializers.CharField(allow_blank=True, default="")
    confirm = serializers.BooleanField(default=False, help_text="Store a value outside the usual range.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return _merge_comparator(attrs)


class LabBatchResultSerializer(serializers.Serializer):
    stored = LabSerializer(many=True)
    skipped = LabSerializer(many=True, help_text="Identical values already stored; nothing changed.")
    warnings = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    notes = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Values stored from a unit other than the site's usual one, as sent and as converted.",
    )


class LabCorrectedSerializer(LabSerializer):
    """A corrected lab value, with the note of a unit other than the site's usual one."""

    notes = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The value as sent and as converted, when its unit is not the site's usual one.",
    )

    class Meta(LabSerializer.Meta):
        fields = [*LabSerializer.Meta.fields, "notes"]
        read_only_fields = fields


class LabCorrectSerializer(serializers.Serializer):
    value = LabValueField()
    comparator = serializers.ChoiceField(choices=Comparator.choices, required=False)
    unit = serializers.CharField(max_length=32, allow_blank=True, default="")
    collected_at = serializers.DateTimeField(required=False)
    version = serializers.IntegerField(min_value=1, help_text=VERSION_HELP)
    reason = serializers.CharField(help_text=REASON_HELP)
    confirm = serializers.BooleanField(default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return _merge_comparator(attrs)


class VoidSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text=VERSION_HELP)
    reason = serializers.CharField(help_text="Why the entry is voided; kept in the audit trail.")


# --- observations --------------------------------------------------------------------------


class ObservationSerializer(serializers.ModelSerializer):
    entered_by = serializers.CharField(source="entered_by.username", default=None, read_only=True)

    class Meta:
        model = Observation
        fields = [
            "id",
            "date",
            "tmax_c",
            "hypotension",
            "oxygen",
            "antipyretic",
            "tocilizumab",
            "corticosteroids",
            "note",
            "source",
            "entered_by",
            "entered_at",
            "version",
        ]
        read_only_fields = fields


class ObservationInSerializer(serializers.Serializer):
    """The ASTCT inputs of one day; the whole day is replaced."""

    date = serializers.DateField(required=False, help_text="Given in the URL for PUT.")
    tmax_c = TmaxField(allow_null=True, required=False, help_text="30.0–45.0 °C, one decimal, or null.")
    hypotension = serializers.ChoiceField(choices=Hypotension.choices, default=Hypotension.NONE)
    oxygen = serializers.ChoiceField(choices=Oxygen.choices, default=Oxygen.NONE)
    antipyretic = serializers.BooleanField(default=False)
    tocilizumab = serializers.BooleanField(default=False)
    corticosteroids = serializers.BooleanField(default=False)
    note = serializers.CharField(allow_blank=True, default="")
    version = serializers.IntegerField(
        min_value=1, required=False, help_text="Required to change a day that already has an observation."
    )
    reason = serializers.CharField(allow_blank=True, default="", help_text="Required to change a day.")


# --- events and overrides ------------------------------------------------------------------


class EventSerializer(serializers.ModelSerializer):
    entered_by = serializers.CharField(source="entered_by.username", default=None, read_only=True)

    class Meta:
        model = ClinicalEvent
        fields = ["id", "kind", "date", "detail", "note", "source", "entered_by", "entered_at", "version"]
        read_only_fields = fields


class EventInSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=EventKind.choices)
    date = serializers.DateField()
    detail = serializers.CharField(
        allow_blank=True,
        default="",
        help_text="death: crs or other; preemptive_therapy: anti_leukemic or immunomodulatory.",
    )
    note = serializers.CharField(allow_blank=True, default="")


class OverrideSerializer(serializers.ModelSerializer):
    entered_by = serializers.CharField(source="entered_by.username", default=None, read_only=True)

    class Meta:
        model = GradeOverride
        fields = ["id", "date", "grade", "reason", "entered_by", "entered_at", "version"]
        read_only_fields = fields


class OverrideInSerializer(serializers.Serializer):
    date = serializers.DateField()
    grade = serializers.IntegerField(min_value=0, max_value=4)
    reason = serializers.CharField()


class OverrideVoidSerializer(serializers.Serializer):
    reason = serializers.CharField()


# --- assessments ---------------------------------------------------------------------------

# Wrapped in allOf so that the daily band and the day-7 band share one inline enum instead of
# two enum components with different names for the same choices.
BAND_SCHEMA = {
    "allOf": [{"type": "string", "enum": Band.values}],
    "description": "Band of points: low, intermediate or high (a lower bound when inputs are missing).",
}


@extend_schema_field(BAND_SCHEMA)
class BandField(serializers.CharField):
    """A score band; one schema for the daily and the day-7 band."""


class AssessmentRowSerializer(serializers.ModelSerializer):
    band = BandField()
    m_easix = serializers.SerializerMethodField()

    class Meta:
        model = DailyAssessment
        fields = [
            "day",
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
            "grading_system",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_m_easix(self, obj: DailyAssessment) -> str | None:
        return _decimal_text(obj.m_easix)


class ModelInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    provenance = serializers.CharField()
    version = serializers.IntegerField()


class AssessmentsSerializer(serializers.Serializer):
    mrn = serializers.CharField()
    model = ModelInfoSerializer()
    note = serializers.CharField()
    rows = AssessmentRowSerializer(many=True)


class SummarySerializer(serializers.ModelSerializer):
    mrn = serializers.CharField(source="patient.mrn")
    model = ModelInfoSerializer()
    day7_band = BandField()
    m_easix_pre_ld = serializers.SerializerMethodField()

    class Meta:
        model = PatientSummary
        fields = [
            "mrn",
            "model",
            "day7_points",
            "day7_max_points",
            "day7_band",
            "day7_band_final",
            "day7_complete",
            "day7_factors",
            "max_crs_grade",
            "max_crs_day",
            "severe_crs",
            "severe_observed_day",
            "severe_observed_grade",
            "bcell_status",
            "first_regeneration_day",
            "m_easix_pre_ld",
            "m_easix_pre_ld_day",
            "m_easix_pre_ld_approximate",
            "last_data_day",
            "grading_system",
            "computed_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_m_easix_pre_ld(self, obj: PatientSummary) -> str | None:
        return _decimal_text(obj.m_easix_pre_ld)


# --- FHIR ----------------------------------------------------------------------------------


class FhirResultSerializer(serializers.Serializer):
    entries = serializers.IntegerField(help_text="Entries in the bundle.")
    stored = serializers.IntegerField(help_text="Lab values stored.")
    skipped = serializers.IntegerField(help_text="Identical values already stored; nothing changed.")
    patients = serializers.ListField(child=serializers.CharField(), help_text="MRNs concerned.")
    warnings = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Unusual values, stored and flagged, by entry.",
    )
    notes = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Values stored from a unit other than the site's usual one, as sent and as converted.",
    )
    dry_run = serializers.BooleanField()
