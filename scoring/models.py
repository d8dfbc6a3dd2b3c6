"""Score model versions and the stored derived results (SPEC 3, 4, 5)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from scoring.i18n import localize
from scoring.rules.alerts import alert_message
from scoring.rules.score import ModelSpec, model_spec_from_dict


class Provenance(models.TextChoices):
    PROVISIONAL = "provisional", _("provisional")
    PUBLISHED = "published", _("published")
    EDITED = "edited", _("edited")
    FITTED = "fitted", _("fitted")


class ModelStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    ACTIVE = "active", _("active")
    RETIRED = "retired", _("retired")


class Band(models.TextChoices):
    LOW = "low", _("low")
    INTERMEDIATE = "intermediate", _("intermediate")
    HIGH = "high", _("high")


# An activation marked longer ago than this was interrupted (its worker killed): ignored.
ACTIVATION_STALE_AFTER = timedelta(hours=6)


class ScoreModelQuerySet(models.QuerySet):
    def active(self) -> ScoreModel:
        return self.get(status=ModelStatus.ACTIVE)

    def being_activated(self, now: datetime | None = None) -> ScoreModelQuerySet:
        """Versions whose activation runs: marked, and not so long ago that it was interrupted."""
        since = (now or timezone.now()) - ACTIVATION_STALE_AFTER
        return self.filter(activation_started_at__gte=since)

    def recompute_targets(self, now: datetime | None = None) -> tuple[ScoreModel, list[ScoreModel]]:
        """The active version and the other versions being activated, in one query.

        A write's recompute stores results under both (see ``recompute_patients``).
        """
        since = (now or timezone.now()) - ACTIVATION_STALE_AFTER
        found = list(
            self.filter(models.Q(status=ModelStatus.ACTIVE) | models.Q(activation_started_at__gte=since))
        )
        active = [m for m in found if m.status == ModelStatus.ACTIVE]
        if len(active) != 1:
            return self.active(), [m for m in found if m.status != ModelStatus.ACTIVE]  # raises as active()
        return active[0], [m for m in found if m.pk != active[0].pk]


class ScoreModel(models.Model):
    """A versioned, editable severe-CRS score (SPEC 5)."""

    name = models.CharField(max_length=64, unique=True)
    # The model's own version number (provisional-v0 is 0); not the edit counter below.
    version = models.PositiveIntegerField(default=1)
    # Optimistic locking: every service write bumps it, and an edit made from an older
    # revision is refused (``version`` above is the model's semantic version, so not reused).
    revision = models.PositiveIntegerField(default=1)
    # The version this one was copied from ("edited from provisional-v0").
    derived_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    provenance = models.CharField(max_length=16, choices=Provenance.choices)
    citation = models.TextField(blank=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=ModelStatus.choices, default=ModelStatus.DRAFT)
    # Factors and band thresholds as stored by ``model_spec_to_dict``.
    spec = models.JSONField()
    fit_report = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    # Set while ``score_model_activate`` computes this version's results (one at a time; the
    # draft is frozen meanwhile); cleared when it becomes active or the activation fails.
    activation_started_at = models.DateTimeField(null=True, blank=True)

    objects = ScoreModelQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-activated_at", "name"]
        constraints = [
            # Exactly one version is active (SPEC 5); the database refuses a second.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_score_model"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("scoring:model-detail", kwargs={"name": self.name})

    def to_spec(self) -> ModelSpec:
        """Return the pure-Python model the rules evaluate."""
        return model_spec_from_dict({**self.spec, "name": self.name})


class DailyAssessment(models.Model):
    """Derived results of one patient-day under one model version (SPEC 4)."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="assessments")
    model = models.ForeignKey(ScoreModel, on_delete=models.PROTECT, related_name="+")
    day = models.IntegerField()
    date = models.DateField()
    points = models.PositiveSmallIntegerField()
    max_points = models.PositiveSmallIntegerField()
    band = models.CharField(max_length=16, choices=Band.choices)
    band_final = models.BooleanField()
    provisional = models.BooleanField()
    factors = models.JSONField(default=list)
    crs_grade = models.PositiveSmallIntegerField(null=True, blank=True)
    crs_computed_grade = models.PositiveSmallIntegerField(null=True, blank=True)
    crs_review = models.BooleanField(default=False)
    crs_overridden = models.BooleanField(default=False)
    fever_waived = models.BooleanField(default=False)
    tocilizumab = models.BooleanField(default=False)
    corticosteroids = models.BooleanField(default=False)
    antipyretic = models.BooleanField(default=False)
    bcell_status = models.CharField(max_length=32)
    first_regeneration_day = models.IntegerField(null=True, blank=True)
    m_easix = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    grading_system = models.CharField(max_length=16, default="ASTCT-2019")

    class Meta:
        ordering = ["patient_id", "model_id", "day"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "model", "day"], name="one_assessment_per_day"),
            models.CheckConstraint(condition=Q(points__lte=models.F("max_points")), name="points_le_max"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} day {self.day} {self.band}"


class PatientSummary(models.Model):
    """Per-patient summary under one model version (SPEC 8.2 summary.csv)."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="summaries")
    model = models.ForeignKey(ScoreModel, on_delete=models.PROTECT, related_name="+")
    day7_points = models.PositiveSmallIntegerField()
    day7_max_points = models.PositiveSmallIntegerField()
    day7_band = models.CharField(max_length=16, choices=Band.choices)
    day7_band_final = models.BooleanField()
    day7_complete = models.BooleanField()
    day7_factors = models.JSONField(default=list)
    max_crs_grade = models.PositiveSmallIntegerField(default=0)
    max_crs_day = models.IntegerField(null=True, blank=True)
    severe_crs = models.BooleanField(default=False)
    severe_observed_day = models.IntegerField(null=True, blank=True)
    severe_observed_grade = models.PositiveSmallIntegerField(null=True, blank=True)
    bcell_status = models.CharField(max_length=32)
    first_regeneration_day = models.IntegerField(null=True, blank=True)
    m_easix_pre_ld = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    m_easix_pre_ld_day = models.IntegerField(null=True, blank=True)
    m_easix_pre_ld_approximate = models.BooleanField(default=False)
    last_data_day = models.IntegerField(default=0)
    # The running rows of the last two data days, for the ward list (``assess.recent_day``).
    recent_days = models.JSONField(default=list, blank=True)
    grading_system = models.CharField(max_length=16, default="ASTCT-2019")
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "model"], name="one_summary_per_model"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} summary under {self.model_id}"


class PendingRecompute(models.Model):
    """A patient whose stored rows were committed before their derived results were recomputed.

    A large import writes its rows in one transaction and recomputes its patients a chunk per
    commit after it (``scoring.services.recompute_pending``), so that no transaction holds
    SQLite's write lock for long (issue 11). The mark is set with the rows and cleared with
    the patient's recompute; while it stands the ward shows the results as being updated.
    """

    patient = models.OneToOneField(
        "patients.Patient", on_delete=models.CASCADE, primary_key=True, related_name="pending_recompute"
    )
    marked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.patient_id} recompute pending since {self.marked_at:%Y-%m-%d %H:%M}"


class AlertKind(models.TextChoices):
    DAY7_HIGH = "day7_high", _("day-7 band high")
    SEVERE_CRS = "severe_crs", _("CRS grade ≥ 3")
    CRS_REVIEW = "crs_review", _("not graded as CRS: review")
    BCELL_SUSPECTED = "bcell_regeneration_suspected", _("B-cell regeneration suspected")
    BCELL_EARLY = "bcell_early_regeneration", _("early B-cell regeneration in CR")


class Alert(models.Model):
    """A stored alert, keyed by (patient, kind, day); never deleted (SPEC 3.5)."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    day = models.IntegerField()
    # English text as raised (the audit trail, API, exports); ``params`` rebuild it in any language.
    message = models.TextField()
    params = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledgement_note = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "kind", "day"], name="one_alert_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.kind} day {self.day}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None and self.acknowledged_at is None

    @property
    def text(self) -> str:
        """The alert in the reader's language (rows stored without parameters read as stored)."""
        try:
            return localize(alert_message(self.kind, self.day, self.params))
        except (KeyError, ValueError):
            return self.message
