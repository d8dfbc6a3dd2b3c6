"""Access checks and the access log, shared by every view, export and API endpoint (SPEC 7)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from crsrisk import store
from crsrisk.accounts.models import AccessLog
from crsrisk.accounts.roles import is_admin, is_clinical, is_hematologist, visible_patients
from patients.models import Patient

security_log = logging.getLogger("crsrisk.security")


def client_ip(request: HttpRequest) -> str | None:
    """The client address as seen by Django (a proxy must set REMOTE_ADDR correctly)."""
    return request.META.get("REMOTE_ADDR") or None


def log_access(request: HttpRequest, mrn: str, page: str, *, granted: bool = True) -> None:
    """Append one line to the access log: who opened which record, when, on which page."""
    user = request.user if request.user.is_authenticated else None
    AccessLog.objects.create(
        user=user,
        username=getattr(user, "username", "") or "",
        mrn=mrn[:32],
        page=page[:200],
        granted=granted,
        ip_address=client_ip(request),
    )
    if not granted:
        fields = {
            "user": getattr(user, "username", "-"),
            "mrn": mrn[:32],
            "page": page,
            "ip": client_ip(request),
        }
        security_log.warning(
            "denied patient access user=%(user)s mrn=%(mrn)s page=%(page)s ip=%(ip)s",
            fields,
            extra={"event": "patient_access_denied", **fields},
        )


def log_list_access(request: HttpRequest, mrns: Iterable[str], page: str) -> None:
    """One access-log line per patient a list returned, written in one insert (issue 9)."""
    user = request.user if request.user.is_authenticated else None
    username = getattr(user, "username", "") or ""
    ip_address = client_ip(request)
    # Set-based (COPY on PostgreSQL): a ward list of 1,000 patients writes 1,000 lines, and
    # bulk_create's per-field compilation was a tenth of the page's time.
    now = timezone.now()
    user_id = getattr(user, "pk", None)
    store.insert_rows(
        AccessLog,
        ["at", "user_id", "username", "mrn", "page", "granted", "ip_address"],
        [(now, user_id, username, mrn[:32], page[:200], True, ip_address or None) for mrn in mrns],
    )


def get_patient_or_404(request: HttpRequest, mrn: str, page: str, *, log: bool = True) -> Patient:
    """The patient if the user's care teams include them; else 404, logged (SPEC 7).

    MRNs are unique whatever their case (a database constraint), so "ab-12" in a URL finds
    "AB-12"; the access is logged under the stored MRN.
    """
    # Lower(mrn), as the unique constraint's index says, so the lookup uses that index.
    patient = (
        visible_patients(request.user)
        .select_related("infusion", "care_team")
        .alias(mrn_lower=Lower("mrn"))
        .filter(mrn_lower=mrn.lower())
        .first()
    )
    if patient is None:
        log_access(request, mrn, page, granted=False)
        raise Http404("No such patient")
    if log:
        log_access(request, patient.mrn, page)
    return patient


def clinical_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required; clinicians and hematologists only (admins see no clinical data)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_clinical(request.user):
            raise PermissionDenied("Clinical pages are for clinicians and hematologists.")
        return view(request, *args, **kwargs)

    return wrapper


def hematologist_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required; hematologists only."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_hematologist(request.user):
            raise PermissionDenied("This action is for hematologists.")
        return view(request, *args, **kwargs)

    return wrapper


def admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required; the admin role only (account administration and the security audit)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_admin(request.user):
            raise PermissionDenied("Account administration is for admins.")
        return view(request, *args, **kwargs)

    return wrapper
