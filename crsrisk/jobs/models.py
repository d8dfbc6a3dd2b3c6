"""Background jobs as product data: what was asked, by whom, its progress, result and errors."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class Job(models.Model):
    """One background job started by a hematologist; the task updates it, the job page reads it.

    A row is never deleted: with ``started_by``, ``params`` and its timestamps it is the audit
    record of the action; the action's own writes keep their history as every service does.
    """

    class Kind(models.TextChoices):
        MODEL_ACTIVATION = "model_activation", _("model activation")
        MODEL_FIT = "model_fit", _("local fitting")
        SITE_PARAMETERS = "site_parameters", _("site parameter change")
        IMPORT_CHECK = "import_check", _("import check")
        IMPORT_RUN = "import_run", _("import")

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")

    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    progress_note = models.CharField(max_length=300, blank=True)
    # What the progress counts: items (patients, rows) or, while a file is read, its bytes.
    progress_unit = models.CharField(
        max_length=8, choices=[("", _("items")), ("bytes", _("bytes"))], default="", blank=True
    )
    result = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Progress never runs past its total (a total of 0 means "not known yet").
            models.CheckConstraint(
                condition=models.Q(progress_total=0)
                | models.Q(progress_done__lte=models.F("progress_total")),
                name="job_progress_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.kind} {self.status}"

    def get_absolute_url(self) -> str:
        return reverse("jobs:detail", args=[self.pk])

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if not self.progress_total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return round(100 * self.progress_done / self.progress_total)


class WorkerBeat(models.Model):
    """A worker's last sign of life, written by a scheduled task on every machine's cluster."""

    host = models.CharField(max_length=255, unique=True)
    pid = models.PositiveIntegerField(default=0)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.host} {self.seen_at:%Y-%m-%d %H:%M:%S}"


class ImportUpload(models.Model):
    """A CSV file uploaded on the import page, kept in the database until its import job ends.

    Every web import goes this way, whatever the file's size (up to IMPORT_UPLOAD_MAX_BYTES).
    A user has at most one upload waiting: a new upload replaces the ones not yet imported.

    The content lives in ordered ``ImportUploadChunk`` rows of about 1 MB, so the web process
    never holds a 100 MB file at once, and any worker on any machine reads it. The worker
    streams ``labs.csv`` and ``observations.csv`` a chunk at a time; ``patients.csv`` and
    ``events.csv`` (a ward's size) are read whole by the import.
    ``report`` is the check (dry run) a background job stores; the chunks are purged once the
    import job ends, and an unconfirmed upload after ``IMPORT_UPLOAD_MAX_AGE_HOURS``.
    """

    class Status(models.TextChoices):
        CHECKING = "checking", _("checking")
        CHECKED = "checked", _("checked")
        REFUSED = "refused", _("refused")
        IMPORTING = "importing", _("importing")

    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16)
    filename = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    correct = models.BooleanField(default=False)
    reason = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CHECKING)
    report = models.JSONField(default=dict, blank=True)
    check_job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # When the check ended: the preview may be confirmed within PREVIEW_MAX_AGE of it.
    checked_at = models.DateTimeField(null=True, blank=True)
    # Where the upload came from: the access log's refused MRNs name it, as a page view does.
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"upload {self.pk} {self.filename} {self.status}"


class ImportUploadChunk(models.Model):
    """One ordered piece of an upload's bytes."""

    upload = models.ForeignKey(ImportUpload, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        ordering = ["upload", "index"]
        constraints = [models.UniqueConstraint(fields=["upload", "index"], name="import_chunk_order")]

    def __str__(self) -> str:
        return f"upload {self.upload_id} chunk {self.index}"
