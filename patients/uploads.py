"""Web imports (SPEC 8.2; issue 11): the upload in the database, its check, preview and import.

Every file uploaded on the import page, whatever its size up to IMPORT_UPLOAD_MAX_BYTES, goes
this one way:

1. ``upload_store`` streams it from Django's temporary file into ordered chunks
   (``ImportUploadChunk``) with its SHA-256, replaces the user's earlier uploads that were not
   imported, and queues a check job;
2. the check job (``run_import_check``) runs the import as a dry run and stores its report on
   the upload (every bad row: line, column, value, what is wrong; bounded as the commands');
3. the preview page reads that report from the database, so any worker on any machine serves
   it; its confirmation carries ``upload_digest``, a SHA-256 of the content's digest and the
   options, and ``upload_confirm`` accepts it from the uploader only, within
   ``PREVIEW_MAX_AGE`` of the check, once;
4. the import job (``run_import_file``) checks that the stored bytes are still the previewed
   ones, then runs ``run_import`` all-or-nothing, as the commands do (the same ``DataTransfer``
   audit record), and deletes the upload and its chunks whatever the outcome.

The import touches only the uploader's care teams (``visible_patients`` when the job runs);
an MRN outside them is refused and written to the access log as a refused access.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crsrisk.accounts.models import AccessLog
from crsrisk.accounts.roles import care_teams_of, sees_all_teams, visible_patients
from crsrisk.jobs.models import ImportUpload, ImportUploadChunk, Job
from patients import imports
from patients.bulk import ERRORS_SHOWN, NOTES_SHOWN
from scoring.services import recompute_pending

if TYPE_CHECKING:
    from crsrisk.jobs.services import Progress

IMPORT_PAGE = "csv import (web)"
PREVIEW_MAX_AGE = timedelta(minutes=30)  # a preview older than this is not imported: check again


class PreviewInvalid(ValidationError):
    """The confirmation does not name a preview that may still be imported."""


REPLACED = gettext_lazy(
    "This upload was replaced by a newer one of yours (sent while it was being stored); "
    "that newer file is the one that is checked."
)


def upload_store(
    *,
    user: Any,
    kind: str,
    filename: str,
    file: Any,
    correct: bool,
    reason: str,
    ip_address: str | None = None,
) -> ImportUpload:
    """Store an uploaded file chunk by chunk, then queue its check job.

    Each chunk commits on its own, so a 100 MB file never holds SQLite's write lock for long
    (a bedside entry meanwhile is not timed out). A request that dies mid-way leaves an upload
    with no check job, which nobody can confirm and the stale purge deletes. The user's earlier
    uploads that are not being imported go: an older tab's preview can no longer be confirmed
    (one file waits per user, as the session kept one), and their bytes do not pile up.
    """
    from crsrisk.jobs.services import job_start

    upload_purge_stale()
    digest = hashlib.sha256()
    size = 0
    upload = ImportUpload.objects.create(
        uploaded_by=user,
        kind=kind,
        filename=filename,
        correct=correct,
        reason=reason,
        sha256="",
        ip_address=ip_address,
    )
    file.seek(0)
    index = 0
    try:
        while block := file.read(settings.IMPORT_UPLOAD_CHUNK_BYTES):
            digest.update(block)
            size += len(block)
            ImportUploadChunk.objects.create(upload=upload, index=index, data=block)
            index += 1
    except IntegrityError:
        # A newer upload of the same user (a double click, another tab) replaced this one
        # while it was being stored: that one is the user's file now.
        raise ValidationError(REPLACED) from None
    with transaction.atomic():
        # Only older uploads go, once this one is whole: a newer one is never deleted.
        older = ImportUpload.objects.filter(uploaded_by=user, pk__lt=upload.pk)
        older.exclude(status=ImportUpload.Status.IMPORTING).delete()
        upload.size, upload.sha256 = size, digest.hexdigest()
        if not ImportUpload.objects.filter(pk=upload.pk).update(size=upload.size, sha256=upload.sha256):
            raise ValidationError(REPLACED)
        upload.check_job = job_start(
            kind=Job.Kind.IMPORT_CHECK, user=user, params={"upload": upload.pk}, exclusive=False
        )
        upload.save(update_fields=["check_job"])
    return upload


def upload_digest(upload: ImportUpload) -> str:
    """SHA-256 of what the confirmation imports: this upload, its content's digest, its options."""
    fields = [
        upload.pk,
        upload.uploaded_by_id,
        upload.kind,
        upload.filename,
        upload.correct,
        upload.reason,
        upload.sha256,
    ]
    return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()


def preview_expires_at(upload: ImportUpload) -> Any:
    """When the preview of a checked upload can no longer be confirmed (None: not checked)."""
    return upload.checked_at + PREVIEW_MAX_AGE if upload.checked_at else None


def upload_confirm(*, user: Any, pk: int, digest: str) -> Job:
    """Queue the import of the previewed upload: its uploader's, within PREVIEW_MAX_AGE, once.

    Raises ``PreviewInvalid`` when the digest does not name a checked upload of this user that
    is still fresh, and ``JobAlreadyRunning`` while another import runs (the upload stays
    checked, to be confirmed again).
    """
    from crsrisk.jobs.services import job_start

    invalid = PreviewInvalid(
        _(
            "This preview is no longer valid (expired, replaced by another upload, or already "
            "imported). Nothing was imported: upload the file again."
        )
    )
    with transaction.atomic():
        upload = ImportUpload.objects.select_for_update().filter(pk=pk, uploaded_by=user).first()
        if upload is None or upload.status != ImportUpload.Status.CHECKED:
            raise invalid
        # Bytes: compare_digest refuses non-ASCII text, and the digest field is the client's.
        if not hmac.compare_digest(upload_digest(upload).encode(), str(digest).encode()):
            raise invalid
        expires = preview_expires_at(upload)
        if expires is None or timezone.now() > expires:
            raise invalid
        job = job_start(kind=Job.Kind.IMPORT_RUN, user=user, params={"upload": upload.pk, "digest": digest})
        ImportUpload.objects.filter(pk=upload.pk).update(status=ImportUpload.Status.IMPORTING)
    return job


class UploadReader(io.RawIOBase):
    """A read-only binary file over an upload's chunks, fetched one at a time.

    ``on_read(bytes_read)`` hears the bytes read so far, over every pass, after each chunk.
    """

    def __init__(self, upload: ImportUpload, on_read: Callable[[int], None] | None = None) -> None:
        self._upload_id = upload.pk
        self._chunks = self._iter(upload.pk)
        self._buffer = b""
        self._position = 0
        self._read = 0
        self._on_read = on_read

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
            self._read += len(block)
            if self._on_read is not None:
                self._on_read(self._read)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self._position += n
        return n


def open_upload(upload: ImportUpload, on_read: Callable[[int], None] | None = None) -> io.BufferedReader:
    """The upload as an open binary file for ``run_import``, read a chunk at a time."""
    return io.BufferedReader(UploadReader(upload, on_read), buffer_size=1 << 20)


def _scope(user: Any) -> dict[str, Any]:
    """The web import touches only the user's patients and names only the user's care teams."""
    return {
        "scope": visible_patients(user),
        "teams": None if sees_all_teams(user) else [t.name for t in care_teams_of(user)],
        "correct_hint": _("import again with “Correct stored values” and a reason"),
    }


def _log_refused(user: Any, upload: ImportUpload, report: imports.ImportReport) -> None:
    """An MRN outside the user's teams is a refused access, as in the API (SPEC 7)."""
    AccessLog.objects.bulk_create(
        AccessLog(
            user=user,
            username=user.get_username(),
            mrn=mrn[:32],
            page=IMPORT_PAGE,
            granted=False,
            ip_address=upload.ip_address,
        )
        for mrn in sorted(report.unknown_mrns)
    )


def _bounded(report: imports.ImportReport) -> imports.ImportReport:
    """The report as the page and the database keep it: the first ERRORS_SHOWN problems in
    full, the rest counted per column (labs.csv's streamed check bounds it already; the other
    files are read whole and may list every row)."""
    if len(report.errors) > ERRORS_SHOWN:
        cut = report.errors[ERRORS_SHOWN:]
        del report.errors[ERRORS_SHOWN:]
        report.hidden_lines += len({e.line for e in cut} - {e.line for e in report.errors})
        for error in cut:
            report.hidden_errors[error.column] = report.hidden_errors.get(error.column, 0) + 1
    return report


def _report_data(report: imports.ImportReport) -> dict[str, Any]:
    report = _bounded(report)
    notes = [str(n) for n in report.notes[:NOTES_SHOWN]]
    if len(report.notes) > NOTES_SHOWN:
        more = len(report.notes) - NOTES_SHOWN
        notes.append(_("… and %(count)d more note(s).") % {"count": more})
    return {
        "ok": report.ok,
        "rows": report.rows,
        "created": report.created,
        "updated": report.updated,
        "skipped": report.skipped,
        "notes": notes,
        "errors": [
            {"line": e.line, "column": e.column, "value": e.value, "reason": str(e.reason)}
            for e in report.errors
        ],
        "error_count": report.error_count,
        "hidden_error_lines": [str(line) for line in report.hidden_error_lines()],
    }


def _reading(upload: ImportUpload, progress: Progress) -> Callable[[int], None]:
    """Progress while the file is read: bytes over every pass (a streamed file is read twice)."""
    total = max(1, upload.size) * (2 if upload.kind in imports.STREAMED_KINDS else 1)
    return lambda read: progress(min(read, total), total, "bytes")


def _result(report: imports.ImportReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "rows": report.rows,
        "transfer": report.transfer_id,
        "errors": report.error_count,
    }


def _run(
    upload: ImportUpload,
    *,
    dry_run: bool,
    progress: Progress,
    note: Callable[[str], None],
    in_write: Callable[[imports.ImportReport], None] | None = None,
) -> imports.ImportReport:
    user = get_user_model().objects.get(pk=upload.uploaded_by_id)
    stages = {
        "write": _("Writing the rows"),
        "recompute": _("Recomputing the patients"),
    }

    def on_progress(stage: str, done: int, total: int) -> None:
        note(stages[stage])
        progress(done, total)

    progress(0, 0)  # a new stage: the previous stage's count does not carry over
    note(
        _("Reading and checking the file (read twice: its MRNs first, then its rows)")
        if upload.kind in imports.STREAMED_KINDS
        else _("Reading and checking the file")
    )

    def logged(report: imports.ImportReport) -> None:
        # With the import's outcome, in one transaction: a job delivered again after it
        # neither logs the refused accesses twice nor loses them.
        _log_refused(user, upload, report)
        if in_write is not None:
            in_write(report)

    with open_upload(upload, _reading(upload, progress)) as data:
        report = imports.run_import(
            upload.kind,
            data,
            filename=upload.filename,
            user=user,
            dry_run=dry_run,
            correct=upload.correct,
            reason=upload.reason,
            on_progress=on_progress,
            in_write=None if in_write is None else logged,
            **_scope(user),
        )
    if in_write is None:  # a check: its refused accesses are logged when it ends
        _log_refused(user, upload, report)
    return report


def _gone() -> ValidationError:
    return ValidationError(
        _("The uploaded file is no longer stored (replaced by a newer upload, or purged): upload it again.")
    )


def run_import_check(job: Job, progress: Progress, note: Callable[[str], None]) -> dict[str, Any]:
    """The check job: a dry run whose report is stored on the upload; a refused file's bytes go."""
    upload = ImportUpload.objects.filter(pk=job.params["upload"]).first()
    if upload is None:
        raise _gone()
    try:
        report = _run(upload, dry_run=True, progress=progress, note=note)
    except ImportUploadChunk.DoesNotExist:
        raise _gone() from None  # replaced while it was being read
    with transaction.atomic():
        status = ImportUpload.Status.CHECKED if report.ok else ImportUpload.Status.REFUSED
        stored = ImportUpload.objects.filter(pk=upload.pk, status=ImportUpload.Status.CHECKING).update(
            report=_report_data(report), status=status, checked_at=timezone.now()
        )
        if not stored:
            raise _gone()
        if not report.ok:
            ImportUploadChunk.objects.filter(upload_id=upload.pk).delete()
    note(_("Checked"))
    return {"ok": report.ok, "rows": report.rows, "errors": report.error_count}


def _stored_sha256(upload: ImportUpload, progress: Progress) -> str:
    digest = hashlib.sha256()
    size = max(1, upload.size)
    with open_upload(upload, lambda read: progress(min(read, size), size, "bytes")) as data:
        while block := data.read(settings.IMPORT_UPLOAD_CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def run_import_file(job: Job, progress: Progress, note: Callable[[str], None]) -> dict[str, Any]:
    """The import job: exactly the previewed bytes, all-or-nothing as the commands.

    The upload goes with the import's own commit, and the job's result is written in that
    transaction too: a job delivered again after the commit (its worker died before marking it
    done) returns that result instead of importing again, after finishing the recompute of the
    patients the import marked (``scoring.services.recompute_pending``: a labs or observations
    import recomputes a chunk of patients per commit after its rows). A database error leaves
    the upload in place for ``job_run``'s retry; any other end (refused, changed, internal
    error) purges it.
    """
    if job.result.get("transfer"):
        if job.result.get("ok"):
            # The rows committed before the worker stopped: finish their patients' recompute.
            note(_("Recomputing the patients"))
            recompute_pending(on_progress=progress)
        note(_("Imported") if job.result.get("ok") else _("Refused"))
        return dict(job.result)
    upload = ImportUpload.objects.filter(pk=job.params["upload"]).first()
    if upload is None:
        raise _gone()
    try:
        note(_("Verifying the stored file"))
        previewed = hmac.compare_digest(
            upload_digest(upload).encode(), str(job.params.get("digest")).encode()
        )
        if not previewed or _stored_sha256(upload, progress) != upload.sha256:
            raise ValidationError(
                _(
                    "The stored file is not the one that was previewed (it changed after its "
                    "check). Nothing was imported: upload the file again."
                )
            )

        def record(report: imports.ImportReport) -> None:
            # In the transaction that writes the rows, or the refusal's audit record: a job
            # delivered again after it returns this result instead of importing (or checking
            # and auditing) again, and the upload goes with the import.
            Job.objects.filter(pk=job.pk).update(result=_result(report))
            ImportUpload.objects.filter(pk=upload.pk).delete()

        report = _run(upload, dry_run=False, progress=progress, note=note, in_write=record)
        result = _result(report)
    except (OperationalError, InterfaceError):
        raise  # rolled back: job_run waits for the database and runs the job again
    except BaseException:
        ImportUpload.objects.filter(pk=upload.pk).delete()
        raise
    note(_("Imported") if report.ok else _("Refused"))
    return result


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
