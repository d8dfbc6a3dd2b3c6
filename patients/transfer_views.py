"""Import and export pages (SPEC 8.1, 8.2; hematologists, SPEC 7).

An import, whatever the file's size, goes one way (``patients.uploads``): the upload is
stored in the database and checked in the background; its page shows the check's progress,
then every bad row or what the import would do; the confirmation must carry the preview's
digest, within ``PREVIEW_MAX_AGE``, once; the import then runs in the background, all or
nothing, with its job page showing the progress and then the result. Nothing of an import
lives in the session, so any worker on any machine serves these pages and runs these jobs.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from crsrisk.accounts.access import client_ip, hematologist_required
from crsrisk.accounts.roles import sees_all_teams, visible_patients
from crsrisk.jobs.models import ImportUpload, Job
from crsrisk.jobs.services import JobAlreadyRunning
from patients import exports, forms
from patients.models import DataTransfer, TransferDirection
from patients.uploads import PreviewInvalid, preview_expires_at, upload_confirm, upload_digest, upload_store
from patients.views import _teams as user_teams

EXPORT_PAGE = "cohort export (web)"
REFRESH_SECONDS = 2  # the check and import pages reload themselves while their job runs


def _sees_all_teams(request: HttpRequest) -> bool:
    """A hematologist account marked "all care teams" (SPEC 7); these pages are for hematologists."""
    return sees_all_teams(request.user)


@hematologist_required
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest) -> HttpResponse:
    """Upload a CSV file (up to IMPORT_UPLOAD_MAX_BYTES); a background job checks it."""
    form = forms.ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            stored = upload_store(
                user=request.user,
                kind=data["kind"],
                filename=data["file"].name,
                file=data["file"],
                correct=data["correct"],
                reason=data["reason"],
                ip_address=client_ip(request),
            )
        except ValidationError as exc:  # replaced by a newer upload of the same user
            form.add_error(None, exc)
        else:
            return redirect("patients:import-upload", pk=stored.pk)
    status = 400 if form.errors else 200
    return render(request, "patients/import_upload.html", {"form": form}, status=status)


def _own_upload(request: HttpRequest, pk: int) -> ImportUpload:
    return get_object_or_404(
        ImportUpload.objects.select_related("check_job"), pk=pk, uploaded_by=request.user
    )


@hematologist_required
def import_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The check's progress, then its report: every bad row, or what the import would do."""
    stored = _own_upload(request, pk)
    job = stored.check_job
    checking = stored.status == ImportUpload.Status.CHECKING
    refresh = REFRESH_SECONDS if checking and job and not job.finished else None
    expires = preview_expires_at(stored)
    context = {
        "upload": stored,
        "job": job,
        "report": stored.report,
        "refresh": refresh,
        "expired": expires is not None and timezone.now() > expires,
        "expires": expires,
    }
    if stored.status == ImportUpload.Status.CHECKED:
        context["form"] = forms.ImportConfirmForm(initial={"digest": upload_digest(stored)})
    elif stored.status == ImportUpload.Status.IMPORTING:
        context["import_job"] = (
            Job.objects.filter(kind=Job.Kind.IMPORT_RUN, started_by=request.user, params__upload=stored.pk)
            .order_by("-pk")
            .first()
        )
    elif stored.status == ImportUpload.Status.REFUSED:
        # The same choices, for the corrected file.
        initial = {"kind": stored.kind, "correct": stored.correct, "reason": stored.reason}
        context["upload_form"] = forms.ImportForm(initial=initial)
    return render(request, "patients/import_preview.html", context)


@hematologist_required
@require_POST
def import_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue the import of exactly the previewed file (once); its job page shows the outcome."""
    form = forms.ImportConfirmForm(request.POST)
    digest = form.cleaned_data["digest"] if form.is_valid() else ""
    try:
        job = upload_confirm(user=request.user, pk=pk, digest=digest)
    except PreviewInvalid as exc:
        messages.error(request, exc.messages[0])
        return redirect("patients:import")
    except JobAlreadyRunning as exc:
        messages.error(request, exc.messages[0])
        return redirect("patients:import-upload", pk=pk)
    return redirect("patients:import-job", job=job.pk)


@hematologist_required
def import_job(request: HttpRequest, job: int) -> HttpResponse:
    """One's own import job: its progress, then the import's result page (or its errors)."""
    record = get_object_or_404(Job, pk=job, kind=Job.Kind.IMPORT_RUN, started_by=request.user)
    if record.status == Job.Status.SUCCEEDED and record.result.get("transfer"):
        return redirect("patients:import-result", transfer=record.result["transfer"])
    if record.finished and not record.errors:
        raise Http404("No such import")
    refresh = None if record.finished else REFRESH_SECONDS
    return render(request, "patients/import_job.html", {"job": record, "refresh": refresh})


# --- the addresses of the earlier pages: the session preview and the separate large import --


@hematologist_required
def legacy_import_preview(request: HttpRequest) -> HttpResponse:
    """The session preview's address: the user's upload waiting to be imported, if any."""
    waiting = (
        ImportUpload.objects.filter(uploaded_by=request.user)
        .exclude(status=ImportUpload.Status.IMPORTING)
        .order_by("-pk")
        .first()
    )
    if waiting is None:
        messages.info(request, _("There is no file waiting for confirmation: upload one."))
        return redirect("patients:import")
    return redirect("patients:import-upload", pk=waiting.pk)


@hematologist_required
def legacy_redirect(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The large import's addresses: its upload page is the import page; nothing is imported
    from them (a confirmation must carry the preview's digest to the new address)."""
    if pk is None:
        return redirect("patients:import")
    return redirect("patients:import-upload", pk=pk)


@hematologist_required
def import_result(request: HttpRequest, transfer: int) -> HttpResponse:
    """The outcome of one's own import, from its audit record."""
    record = DataTransfer.objects.filter(
        pk=transfer, user=request.user, direction=TransferDirection.IMPORT, dry_run=False
    ).first()
    if record is None:
        raise Http404("No such import")
    lines = record.detail.splitlines()
    return render(request, "patients/import_result.html", {"record": record, "lines": lines})


@hematologist_required
@require_http_methods(["GET", "POST"])
def export(request: HttpRequest) -> HttpResponse:
    """The six CSV files of export_cohort for the user's patients, as one zip (audited, logged)."""
    patients = visible_patients(request.user)
    if request.method == "POST":
        filename = f"crsrisk-cohort-{timezone.localtime():%Y%m%d-%H%M%S}.zip"
        data, _report = exports.export_zip(
            filename=filename,
            user=request.user,
            patients=patients,
            page=EXPORT_PAGE,
            ip_address=client_ip(request),
        )
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    context = {
        "count": patients.count(),
        "all_teams": _sees_all_teams(request),
        "teams": user_teams(request),
        "files": [f"{kind}.csv" for kind in exports.FILE_ORDER],
    }
    return render(request, "patients/export.html", context)
