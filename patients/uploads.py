"""Web imports in the background (issue 11): the upload in the database, its check and its import.

The upload is stored in ordered chunks (``ImportUploadChunk``) as it streams from Django's
temporary file; a check job runs the import as a dry run and stores the report on the upload;
after the user confirms, an import job runs ``run_import`` all-or-nothing, as the commands do,
and the upload and its chunks are deleted whatever the outcome.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crsrisk.accounts.models import AccessLog
from crsrisk.accounts.roles import care_teams_of, sees_all_teams, visible_patients
from crsrisk.jobs.models import ImportUpload, ImportUploadChunk, Job
from patients import imports

IMPORT_PAGE = "csv import (web)"


def upload_store(
    *, user: Any, kind: str, filename: str, file: Any, correct: bool, reason: str
) -> ImportUpload:
    """Store an uploaded file chunk by chunk, then queue its check job.

    Each chunk commits on its own, so a 100 MB file never holds SQLite's write lock for long
    (a bedside entry meanwhile is not timed out). A request that dies mid-way leaves an upload
    with no check job, which nobody can confirm and the stale purge deletes.
    """
    from crsrisk.jobs.services import job_start

    upload_purge_stale()
    digest = hashlib.sha256()
    size = 0
    upload = ImportUpload.objects.create(
        uploaded_by=user, kind=kind, filename=filename, correct=correct, reason=reason, sha256=""
    )
    file.seek(0)
    index = 0
    while block := file.read(settings.IMPORT_UPLOAD_CHUNK_BYTES):
        digest.update(block)
        size += len(block)
        ImportUploadChunk.objects.create(upload=upload, index=index, data=block)
        index += 1
    with transaction.atomic():
        upload.size, upload.sha256 = size, digest.hexdigest()
        upload.check_job = job_start(
            kind=Job.Kind.IMPORT_CHECK, user=user, params={"upload": upload.pk}, exclusive=False
        )
        upload.save(update_fields=["size", "sha256", "check_job"])
    return upload


class UploadReader(io.RawIOBase):
    """A read-only binary file over an upload's chunks, fetched one at a time."""

    def __init__(self, upload: ImportUpload) -> None:
        self._upload_id = upload.pk
        self._chunks = self._iter(upload.pk)
        self._buffer = b""
        self._position = 0

    @staticmethod
    def _iter(upload_id: int) -> Iterator[bytes]:
        ids = (
            ImportUploadChunk.objects.filter(upload_id=upload_id)
            .order_by("index")
            .values_list("pk", flat=True)
        )
        for pk in list(ids):
            yield bytes(ImportUploadChunk.objects.values_list("data", flat=True).get(pk=pk))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # to the start only: the labs import reads a file twice (its MRNs, then its rows)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR and offset == 0:
            return self._position
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("an upload can only be read again from its start")
        self._chunks, self._buffer, self._position = self._iter(self._upload_id), b"", 0
        return 0

    def readinto(self, buffer: Any) -> int:
        while not self._buffer:
            block = next(self._chunks, None)
            if block is None:
                return 0
            self._buffer = block
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self._position += n
        return n


def open_upload(upload: ImportUpload) -> io.BufferedReader:
    """The upload as an open binary file for ``run_import``, read a chunk at a time."""
    return io.BufferedReader(UploadReader(upload), buffer_size=1 << 20)


def _scope(user: Any) -> dict[str, Any]:
    """The web import touches only the user's patients and names only the user's care teams."""
    return {
        "scope": visible_patients(user),
        "teams": None if sees_all_teams(user) else [t.name for t in care_teams_of(user)],
        "correct_hint": _("import again with “Correct stored values” and a reason"),
    }


def _log_refused(user: Any, report: imports.ImportReport) -> None:
    """An MRN outside the user's teams is a refused access, as in the API (SPEC 7)."""
    for mrn in sorted(report.unknown_mrns):
        AccessLog.objects.create(
            user=user, username=user.get_username(), mrn=mrn[:32], page=IMPORT_PAGE, granted=False
        )


def _report_data(report: imports.ImportReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "rows": report.rows,
        "created": report.created,
        "updated": report.updated,
        "skipped": report.skipped,
        "notes": list(report.notes),
        "errors": [
            {"line": e.line, "column": e.column, "value": e.value, "reason": str(e.reason)}
            for e in report.errors
        ],
        "error_count": report.error_count,
        "hidden_error_lines": report.hidden_error_lines(),
        "lines": report.lines(),
    }


def _run(upload: ImportUpload, *, dry_run: bool) -> imports.ImportReport:
    user = get_user_model().objects.get(pk=upload.uploaded_by_id)
    with open_upload(upload) as data:
        report = imports.run_import(
            upload.kind,
            data,
            filename=upload.filename,
            user=user,
            dry_run=dry_run,
            correct=upload.correct,
            reason=upload.reason,
            **_scope(user),
        )
    _log_refused(user, report)
    return report


def run_import_check(
    job: Job, progress: Callable[[int, int], None], note: Callable[[str], None]
) -> dict[str, Any]:
    """The check job: a dry run whose report is stored on the upload; a refused file's bytes go."""
    upload = ImportUpload.objects.filter(pk=job.params["upload"]).first()
    if upload is None:
        raise ValidationError(_("The uploaded file is no longer stored (purged): upload it again."))
    progress(0, 1)
    report = _run(upload, dry_run=True)
    with transaction.atomic():
        upload.report = _report_data(report)
        upload.status = ImportUpload.Status.CHECKED if report.ok else ImportUpload.Status.REFUSED
        upload.save(update_fields=["report", "status"])
        if not report.ok:
            upload.chunks.all().delete()
    progress(1, 1)
    return {"ok": report.ok, "rows": report.rows, "errors": report.error_count}


def run_import_file(
    job: Job, progress: Callable[[int, int], None], note: Callable[[str], None]
) -> dict[str, Any]:
    """The import job: all-or-nothing as the commands; the upload is purged whatever the outcome."""
    upload = ImportUpload.objects.filter(pk=job.params["upload"]).first()
    if upload is None:
        raise ValidationError(_("The uploaded file is no longer stored (purged): upload it again."))
    try:
        progress(0, 1)
        report = _run(upload, dry_run=False)
    finally:
        ImportUpload.objects.filter(pk=upload.pk).delete()
    progress(1, 1)
    return {
        "ok": report.ok,
        "rows": report.rows,
        "transfer": report.transfer_id,
        "errors": report.error_count,
    }


def upload_purge_stale(now: Any = None) -> int:
    """Delete uploads nobody confirmed within IMPORT_UPLOAD_MAX_AGE_HOURS; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IMPORT_UPLOAD_MAX_AGE_HOURS)
    # An upload whose import job is still queued or running stays; one whose import job died
    # for good (failed before it could delete the upload) goes like any other.
    importing = [
        params.get("upload")
        for params in Job.objects.filter(
            kind=Job.Kind.IMPORT_RUN, status__in=(Job.Status.QUEUED, Job.Status.RUNNING)
        ).values_list("params", flat=True)
    ]
    stale = ImportUpload.objects.filter(created_at__lt=cutoff).exclude(pk__in=importing)
    count = stale.count()
    stale.delete()
    return count
