"""Clinical data: patients, infusions, labs, daily observations, events (SPEC 2).

Every clinical model keeps a change history (django-simple-history) and is
written only through ``patients.services``. Nothing here is hard-deleted by the
application: a removal is a *void* with a reason.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from scoring.rules.units import ANALYTES

# "register" is a page under /patients/, so it cannot also be a patient's URL.
RESERVED_MRNS = ("register",)
MRN_VALIDATOR = RegexValidator(
    r"^(?!register$)[A-Za-z0-9_-]{1,32}$",
    message=_("MRN must be 1–32 characters of A–Z, a–z, 0–9, '-' and '_' (and not 'register')."),
)
# Characters that hide or reorder what a reader sees: C0 and C1 controls, line and paragraph
# separators, and the bidirectional embeddings, overrides, isolates and marks (Unicode
# UAX #9; the "Trojan Source" attack, CVE-2021-42574). A name never needs them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_characters(text: str) -> list[str]:
    """The control and text-direction characters of ``text``, as ``U+XXXX``, in order, once each."""
    found: dict[str, None] = {}
    for ch in text:
        if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            found[f"U+{ord(ch):04X}"] = None
    return list(found)


def validate_display_text(value: str) -> None:
    """Refuse control and text-direction characters in a name (issue 9)."""
    if found := unsafe_characters(value or ""):
        raise ValidationError(
            _(
                "Control and text-direction characters are not accepted (found %(chars)s); "
                "type the name as plain text."
            )
            % {"chars": ", ".join(found)},
            code="unsafe_characters",
        )


TMAX_MIN_C = Decimal("30.0")  # SPEC 2.3
TMAX_MAX_C = Decimal("45.0")  # SPEC 2.3


class Source(models.TextChoices):
    FORM = "form", _("form")
    CSV = "csv", _("CSV import")
    API = "api", _("API")
    FHIR = "fhir", _("FHIR")


class Sex(models.TextChoices):
    FEMALE = "F", _("female")
    MALE = "M", _("male")
    UNKNOWN = "U", _("unknown")


class Analyte(models.TextChoices):
    CRP = "crp", _("C-reactive protein")
    FERRITIN = "ferritin", _("Ferritin")
    IL6 = "il6", _("Interleukin-6")
    APTT = "aptt", _("APTT")
    ANC = "anc", _("Absolute neutrophil count")
    PLATELETS = "platelets", _("Platelets")
    LDH = "ldh", _("Lactate dehydrogenase")
    BCELL = "bcell", _("CD19+ B cells")


class Comparator(models.TextChoices):
    LT = "<", "<"
    LE = "<=", "<="
    GT = ">", ">"
    GE = ">=", ">="


class Hypotension(models.TextChoices):
    NONE = "none", _("none")
    NO_VASOPRESSOR = "no_vasopressor", _("hypotension not needing vasopressors")
    ONE_VASOPRESSOR = "one_vasopressor", _("one vasopressor (± vasopressin)")
    MULTIPLE_VASOPRESSORS = "multiple_vasopressors", _("several vasopressors")


class Oxygen(models.TextChoices):
    NONE = "none", _("none")
    LOW_FLOW = "low_flow", _("low flow (nasal cannula ≤ 6 L/min, blow-by)")
    HIGH_FLOW = "high_flow", _("high flow (> 6 L/min, facemask, non-rebreather, Venturi)")
    POSITIVE_PRESSURE = "positive_pressure", _("positive pressure (CPAP, BiPAP, ventilation)")


class EventKind(models.TextChoices):
    CR = "cr", _("complete remission")
    RELAPSE = "relapse", _("relapse")
    DEATH = "death", _("death")
    PREEMPTIVE_THERAPY = "preemptive_therapy", _("preemptive therapy")
    HSCT = "hsct", _("allogeneic HSCT")
    LAST_FOLLOW_UP = "last_follow_up", _("last follow-up")


EVENT_DETAILS: dict[str, tuple[str, ...]] = {
    EventKind.DEATH: ("crs", "other"),
    EventKind.PREEMPTIVE_THERAPY: ("anti_leukemic", "immunomodulatory"),
}


class CareTeam(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class VoidableQuerySet(models.QuerySet):
    def active(self) -> VoidableQuerySet:
        return self.filter(voided_at__isnull=True)


class Voidable(models.Model):
    """A row that is voided with a reason instead of being deleted (SPEC 2.2)."""

    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    void_reason = models.TextField(blank=True)

    objects = VoidableQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None


class Entered(models.Model):
    """Who entered a row, when, from where; ``version`` guards against stale edits."""

    source = models.CharField(max_length=8, choices=Source.choices, default=Source.FORM)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    entered_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)

    class Meta:
        abstract = True


class Patient(models.Model):
    mrn = models.CharField(_("MRN"), max_length=32, unique=True, validators=[MRN_VALIDATOR])
    name = models.CharField(_("name"), max_length=200, validators=[validate_display_text])
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    care_team = models.ForeignKey(CareTeam, on_delete=models.PROTECT, related_name="patients")
    diagnosis = models.CharField(_("diagnosis"), max_length=100, default="B-ALL")
    synthetic = models.BooleanField(default=False, help_text=_("Synthetic demo patient, not a real person."))
    # A hematologist may end monitoring earlier or extend it (SPEC 8.1); days post-infusion.
    monitoring_end_day = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=1)

    history = HistoricalRecords()

    class Meta:
        ordering = ["mrn"]
        constraints = [
            # The MRN is the key of every import and of the API (SPEC 2.1).
            models.CheckConstraint(
                condition=Q(mrn__regex=r"^[A-Za-z0-9_-]{1,32}$"), name="patient_mrn_format"
            ),
            models.CheckConstraint(condition=Q(sex__in=["F", "M", "U"]), name="patient_sex_valid"),
            # DEMO-0001 and demo-0001 would be two patients to the database and one to a
            # reader (issue 9). MRNs are ASCII, so SQLite's lower() is enough.
            models.UniqueConstraint(Lower("mrn"), name="patient_mrn_unique_ci"),
        ]

    def __str__(self) -> str:
        return f"{self.mrn} {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("patients:detail", kwargs={"mrn": self.mrn})


# NGS-MRD reaches 10⁻⁶ of nucleated cells (0.0001 %): 10 places keep 3 significant digits.
MRD_DECIMAL_PLACES = 10
MRD_MAX_DIGITS = 13  # 100.0000000000


class Infusion(models.Model):
    """The CAR-T infusion: day 0. One per patient for now (SPEC 2.1)."""

    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="infusion")
    product = models.CharField(_("product"), max_length=200, blank=True)
    infusion_date = models.DateField(_("infusion date"))
    lymphodepletion_start = models.DateField(_("lymphodepletion start"), null=True, blank=True)
    baseline_mrd_pct = models.DecimalField(
        _("baseline MRD (%)"),
        max_digits=MRD_MAX_DIGITS,
        decimal_places=MRD_DECIMAL_PLACES,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    post_ld_mrd_pct = models.DecimalField(
        _("post-lymphodepletion MRD (%)"),
        max_digits=MRD_MAX_DIGITS,
        decimal_places=MRD_DECIMAL_PLACES,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    # "<" with 0.01: reported below detection (flow cytometry's negative); empty: measured.
    baseline_mrd_comparator = models.CharField(
        _("baseline MRD comparator"), max_length=2, choices=Comparator.choices, blank=True, default=""
    )
    post_ld_mrd_comparator = models.CharField(
        _("post-lymphodepletion MRD comparator"),
        max_length=2,
        choices=Comparator.choices,
        blank=True,
        default="",
    )
    version = models.PositiveIntegerField(default=1)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(baseline_mrd_pct__isnull=True)
                | Q(baseline_mrd_pct__gte=0, baseline_mrd_pct__lte=100),
                name="infusion_baseline_mrd_0_100",
            ),
            models.CheckConstraint(
                condition=Q(post_ld_mrd_pct__isnull=True)
                | Q(post_ld_mrd_pct__gte=0, post_ld_mrd_pct__lte=100),
                name="infusion_post_ld_mrd_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient.mrn} infusion {self.infusion_date}"


def _lab_range_condition() -> Q:
    """Each analyte's value within its reject range (SPEC 2.2), enforced by the database."""
    condition = Q()
    for code, spec in ANALYTES.items():
        condition |= Q(analyte=code, value__gte=spec.reject_min, value__lte=spec.reject_max)
    return condition


class LabResult(Voidable, Entered):
    """One measurement, long format, canonical unit (SPEC 2.2)."""

    # No index of its own: the (patient, analyte, collected_at) index below begins with it, and
    # a large import maintains every index of this table under SQLite's one write lock.
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="labs", db_index=False)
    analyte = models.CharField(max_length=16, choices=Analyte.choices)
    value = models.DecimalField(max_digits=18, decimal_places=6)
    comparator = models.CharField(max_length=2, choices=Comparator.choices, blank=True)
    collected_at = models.DateTimeField()
    entered_value = models.CharField(max_length=64)
    entered_unit = models.CharField(max_length=32, blank=True)
    loinc = models.CharField(max_length=16, blank=True)
    note = models.TextField(blank=True)
    flags = models.JSONField(default=list, blank=True)

    # Nothing looks history rows up by who entered or voided them (history_user says who
    # changed them); an import writes one per row, so those two indexes would only cost.
    history = HistoricalRecords(no_db_index=["entered_by", "voided_by"])

    class Meta:
        ordering = ["patient_id", "collected_at", "analyte"]
        indexes = [models.Index(fields=["patient", "analyte", "collected_at"])]
        constraints = [
            models.CheckConstraint(condition=_lab_range_condition(), name="lab_value_in_range"),
            # One live value per patient, analyte and collection time; a different value
            # is a correction of that row, never a silent second row.
            models.UniqueConstraint(
                fields=["patient", "analyte", "collected_at"],
                condition=Q(voided_at__isnull=True),
                name="lab_unique_live_measurement",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.analyte} {self.comparator}{self.value} @ {self.collected_at:%Y-%m-%d %H:%M}"

    @property
    def canonical_unit(self) -> str:
        return ANALYTES[self.analyte].canonical_unit


class Observation(Voidable, Entered):
    """Daily bedside observation: the ASTCT inputs of one calendar day (SPEC 2.3)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="observations")
    date = models.DateField()
    tmax_c = models.DecimalField(max_digits=3, decimal_places=1, null=True, blank=True)
    hypotension = models.CharField(max_length=24, choices=Hypotension.choices, default=Hypotension.NONE)
    oxygen = models.CharField(max_length=24, choices=Oxygen.choices, default=Oxygen.NONE)
    antipyretic = models.BooleanField(default=False)
    tocilizumab = models.BooleanField(default=False)
    corticosteroids = models.BooleanField(default=False)
    note = models.TextField(blank=True)

    history = HistoricalRecords(no_db_index=["entered_by", "voided_by"])  # as LabResult's

    class Meta:
        ordering = ["patient_id", "date"]
        constraints = [
            # One row per patient per day: a new entry for that day is an update.
            models.UniqueConstraint(
                fields=["patient", "date"],
                condition=Q(voided_at__isnull=True),
                name="observation_one_per_day",
            ),
            models.CheckConstraint(
                condition=Q(tmax_c__isnull=True) | Q(tmax_c__gte=TMAX_MIN_C, tmax_c__lte=TMAX_MAX_C),
                name="observation_tmax_30_45",
            ),
            models.CheckConstraint(
                condition=Q(hypotension__in=Hypotension.values), name="observation_hypotension"
            ),
            models.CheckConstraint(condition=Q(oxygen__in=Oxygen.values), name="observation_oxygen"),
        ]

    def __str__(self) -> str:
        return f"{self.patient.mrn} observation {self.date}"


class ClinicalEvent(Voidable, Entered):
    """An outcome or event with a date (SPEC 2.4)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    date = models.DateField()
    detail = models.CharField(max_length=24, blank=True)
    note = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient_id", "date", "kind"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=EventKind.values), name="event_kind"),
            models.CheckConstraint(
                condition=~Q(kind="death") | Q(detail__in=["crs", "other"]),
                name="event_death_detail",
            ),
            models.CheckConstraint(
                condition=~Q(kind="preemptive_therapy") | Q(detail__in=["anti_leukemic", "immunomodulatory"]),
                name="event_preemptive_detail",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient.mrn} {self.kind} {self.date}"


class GradeOverride(Voidable, Entered):
    """A hematologist's recorded CRS grade for one day, with its reason (SPEC 2.4)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="grade_overrides")
    date = models.DateField()
    grade = models.PositiveSmallIntegerField(validators=[MaxValueValidator(4)])
    reason = models.TextField()

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient_id", "date"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "date"],
                condition=Q(voided_at__isnull=True),
                name="override_one_per_day",
            ),
            models.CheckConstraint(condition=Q(grade__lte=4), name="override_grade_0_4"),
            models.CheckConstraint(condition=~Q(reason=""), name="override_reason_required"),
        ]

    def __str__(self) -> str:
        return f"{self.patient.mrn} grade {self.grade} on {self.date}"


class SiteParameters(models.Model):
    """Clinical site parameters edited by hematologists (SPEC 8.5). A single row."""

    bcell_threshold = models.DecimalField(
        _("B-cell threshold τ (cells/µL)"), max_digits=12, decimal_places=6, default=Decimal(0)
    )
    regeneration_window_days = models.PositiveIntegerField(_("regeneration window W (days)"), default=45)
    confirm_regeneration = models.BooleanField(_("confirm regeneration with a repeat"), default=True)
    crs_outcome_window = models.PositiveIntegerField(_("CRS outcome window (days)"), default=30)
    default_care_team = models.ForeignKey(
        CareTeam, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Analyte code -> the unit the ward usually types (SPEC 8.5); a missing code means the
    # canonical unit. It preselects the lab form's unit and decides which units ask.
    usual_units = models.JSONField(_("usual unit of each analyte"), default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)

    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "site parameters"
        constraints = [
            models.CheckConstraint(condition=Q(bcell_threshold__gte=0), name="site_tau_nonnegative"),
            models.CheckConstraint(condition=Q(regeneration_window_days__gte=1), name="site_window_positive"),
        ]

    def __str__(self) -> str:
        return "Site parameters"

    @classmethod
    def load(cls) -> SiteParameters:
        """Return the single row, creating it with the SPEC defaults."""
        obj, _created = cls.objects.get_or_create(pk=1)
        return obj


class TransferDirection(models.TextChoices):
    IMPORT = "import", _("import")
    EXPORT = "export", _("export")


class DataTransfer(models.Model):
    """One import or export of CSV files, kept in the audit trail (SPEC 8.2). Append-only.

    Refused and dry-run imports are recorded too, so the trail shows every attempt.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    direction = models.CharField(max_length=8, choices=TransferDirection.choices)
    # patients, labs, observations, events, or cohort for an export of all six files.
    kind = models.CharField(max_length=16)
    filename = models.CharField(max_length=500, blank=True)
    rows_created = models.PositiveIntegerField(default=0)
    rows_skipped = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_refused = models.PositiveIntegerField(default=0)
    patients = models.PositiveIntegerField(default=0)
    dry_run = models.BooleanField(default=False)
    accepted = models.BooleanField(default=False)
    correction_reason = models.TextField(blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.direction} {self.kind} {self.filename}"

    def save(self, *args: object, **kwargs: object) -> None:
        # The audit trail is append-only from the application (SPEC 7).
        if not self._state.adding:
            raise ValueError("A data transfer record is append-only and cannot be changed.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("A data transfer record is append-only and cannot be deleted.")


class IdempotencyKey(models.Model):
    """The first answer to an API write sent with an ``Idempotency-Key`` header (SPEC 9).

    Written in the transaction of the write it answers, and only when that write stored
    something, so that a retry after a lost response replays the answer instead of
    storing twice. Kept at least ``IDEMPOTENCY_KEY_HOURS``; ``purge_idempotency_keys``
    removes older ones. Not clinical data: the stored answer is a copy of what was sent.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of method, path with query string, and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=2000)
    status_code = models.PositiveSmallIntegerField(default=0)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            # Keys are per user; the unique index is also what makes a concurrent retry
            # wait for the first request's transaction instead of storing a second time.
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} {self.method} {self.path} {self.status_code}"
