"""Site-level views: the landing redirect, the About page, the health check, error pages."""

from __future__ import annotations

import sys

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader

from crsrisk.accounts.roles import is_admin, is_clinical
from crsrisk.jobs.health import health_report
from crsrisk.jobs.middleware import database_unavailable_response, is_database_unavailable


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each role to its starting page."""
    if is_clinical(request.user):
        return redirect("patients:ward")
    if is_admin(request.user):
        return redirect("accounts:user-list")
    return render(request, "no_role.html", status=403)


@login_required
def about(request: HttpRequest) -> HttpResponse:
    """What the application does and does not do (SPEC 3.6)."""
    return render(request, "about.html")


def health(request: HttpRequest) -> JsonResponse:
    """Unauthenticated health check: the database, the queue's oldest waiting job, the workers.

    503 when the database does not answer; the queue and workers are reported, and a load
    balancer decides on ``status`` (docs/deploy.md).
    """
    report = health_report()
    response = JsonResponse(report, status=200 if report["database"] == "ok" else 503)
    if report["database"] != "ok":
        response["Retry-After"] = "5"
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "400.html", status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """A page without a stack trace; the API gets a JSON body, never an HTML page."""
    if is_database_unavailable(sys.exc_info()[1]):
        # Raised outside a view (a middleware reading the session, say): still a 503.
        return database_unavailable_response(request)
    if getattr(request, "path", "").startswith("/api/"):
        return JsonResponse(
            {"detail": "Internal error: nothing was stored. The error was logged for the administrators."},
            status=500,
        )
    # No request context: the failure may lie in a context processor or the database.
    return HttpResponseServerError(loader.get_template("500.html").render())
