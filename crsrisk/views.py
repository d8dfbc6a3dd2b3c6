"""Site-level views: the landing redirect and the health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

from crsrisk.accounts.roles import is_admin


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each role to its starting page."""
    if is_admin(request.user):
        return redirect("admin:index")
    return redirect("admin:index")


def health(request: HttpRequest) -> JsonResponse:
    """Unauthenticated health check: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
