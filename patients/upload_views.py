"""Large imports from the web page (issue 11): upload, background check, preview, background import.

The upload and its check report live in the database (``ImportUpload``), not in the session,
so any worker on any machine reads them. Only the user who uploaded a file sees its preview.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from crsrisk.accounts.access import hematologist_required
from crsrisk.jobs.models import ImportUpload, Job
from crsrisk.jobs.services import JobAlreadyRunning, job_start
from patients import forms
from patients.uploads import upload_store

REFRESH_SECONDS = 2


@hematologist_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    """Upload a CSV file of up to IMPORT_UPLOAD_MAX_BYTES; a background job checks it."""
    form = forms.LargeImportForm(request.POST or None, request.FILES or None)
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
            )
        except JobAlreadyRunning as exc:
            form.add_error(None, exc)
        else:
            return redirect("patients:upload-preview", pk=stored.pk)
    return render(request, "patients/upload_form.html", {"form": form}, status=400 if form.errors else 200)


def _own_upload(request: HttpRequest, pk: int) -> ImportUpload:
    return get_object_or_404(
        ImportUpload.objects.select_related("check_job"), pk=pk, uploaded_by=request.user
    )


@hematologist_required
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The check's progress, then its report: the bad rows, or what the import would do."""
    stored = _own_upload(request, pk)
    job = stored.check_job
    refresh = (
        REFRESH_SECONDS
        if stored.status == ImportUpload.Status.CHECKING and job and not job.finished
        else None
    )
    context = {"upload": stored, "job": job, "report": stored.report, "refresh": refresh}
    return render(request, "patients/upload_preview.html", context)


@hematologist_required
@require_POST
def confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue the import of the checked file (once); its page shows the progress and the outcome."""
    stored = _own_upload(request, pk)
    if stored.status != ImportUpload.Status.CHECKED:
        messages.error(
            request, _("This file cannot be imported: it was refused, or is already being imported.")
        )
        return redirect("patients:upload-preview", pk=pk)
    try:
        job = job_start(kind=Job.Kind.IMPORT_RUN, user=request.user, params={"upload": stored.pk})
    except JobAlreadyRunning as exc:
        messages.error(request, exc.messages[0])
        return redirect("patients:upload-preview", pk=pk)
    ImportUpload.objects.filter(pk=pk).update(status=ImportUpload.Status.IMPORTING)
    return redirect("patients:upload-job", job=job.pk)


@hematologist_required
def import_job(request: HttpRequest, job: int) -> HttpResponse:
    """One's own import job: its progress, then the import's result page (or its errors)."""
    record = get_object_or_404(Job, pk=job, kind=Job.Kind.IMPORT_RUN, started_by=request.user)
    if record.status == Job.Status.SUCCEEDED and record.result.get("transfer"):
        return redirect("patients:import-result", transfer=record.result["transfer"])
    if record.finished and not record.errors:
        raise Http404("No such import")
    refresh = None if record.finished else REFRESH_SECONDS
    return render(request, "patients/upload_job.html", {"job": record, "refresh": refresh})
