"""The job pages: progress, result and errors of background jobs (hematologists)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from crsrisk.accounts.access import hematologist_required
from crsrisk.jobs.models import Job

REFRESH_SECONDS = 2  # the page reloads itself while the job is queued or running


@hematologist_required
def job_list(request: HttpRequest) -> HttpResponse:
    """The latest background jobs, newest first."""
    jobs = Job.objects.select_related("started_by")[:50]
    return render(request, "jobs/job_list.html", {"jobs": jobs})


@hematologist_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One job: what was asked and by whom, its progress, then its result or its errors."""
    job = get_object_or_404(Job.objects.select_related("started_by"), pk=pk)
    refresh = None if job.finished else REFRESH_SECONDS
    return render(request, "jobs/job_detail.html", {"job": job, "refresh": refresh})
