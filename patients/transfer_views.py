"""Import and export pages (SPEC 8.1, 8.2; hematologists, SPEC 7).

An import is two steps. The upload runs the import as a dry run: a refused file
is shown with every bad row and nothing is kept; an accepted one is kept in the
user's session (server-side) with a digest of its content and options, and the
preview page shows what it would do. The confirmation must carry that digest,
within ``PREVIEW_MAX_AGE``: only the previewed content is imported, once. The
import itself is ``patients.imports.run_import``, as for the commands.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from crsrisk.accounts.access import client_ip, hematologist_required, log_access
from crsrisk.accounts.roles import sees_all_teams, visible_patients
from patients import exports, forms, imports
from patients.models import DataTransfer, TransferDirection
from patients.views import _teams as user_teams

PENDING_KEY = "pending_import"
PREVIEW_MAX_AGE = timedelta(minutes=30)
EXPORT_PAGE = "cohort export (web)"
IMPORT_PAGE = "csv import (web)"


def _digest(pending: dict[str, Any]) -> str:
    """SHA-256 of what will be imported: the file's content and the options it was previewed with."""
    fields = [pending["kind"], pending["filename"], pending["correct"], pending["reason"], pending["text"]]
    return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()


def _sees_all_teams(request: HttpRequest) -> bool:
    """A hematologist account marked "all care teams" (SPEC 7); these pages are for hematologists."""
    return sees_all_teams(request.user)


def _scope(request: HttpRequest) -> dict[str, Any]:
    """The web import touches only the user's patients and names only the user's care teams."""
    return {
        "scope": visible_patients(request.user),
        "teams": None if _sees_all_teams(request) else [t.name for t in user_teams(request)],
        "correct_hint": _("import again with “Correct stored values” and a reason"),
    }


def _log_refused(request: HttpRequest, report: imports.ImportReport) -> None:
    """An MRN outside the user's teams is a refused access, as in the API (SPEC 7)."""
    for mrn in sorted(report.unknown_mrns):
        log_access(request, mrn, IMPORT_PAGE, granted=False)


def _valid_pending(request: HttpRequest, digest: str) -> dict[str, Any] | None:
    """The pending import the digest names, if it is still fresh and intact."""
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    # Bytes: compare_digest refuses non-ASCII text, and the digest field is the client's.
    if not hmac.compare_digest(str(pending.get("digest")).encode(), digest.encode()):
        return None
    created = parse_datetime(str(pending.get("created")))
    if created is None or timezone.now() - created > PREVIEW_MAX_AGE:
        return None
    if pending.get("user") != request.user.pk or _digest(pending) != digest:
        return None
    return pending


def _keep_pending(
    request: HttpRequest, options: dict[str, Any], filename: str, content: bytes, report: imports.ImportReport
) -> None:
    """Keep an accepted file in the session (server-side) until it is confirmed, with its digest."""
    pending = {
        **options,
        "filename": filename,
        "text": imports.decode(content, filename)[0],
        "user": request.user.pk,
        "created": timezone.now().isoformat(),
        "preview": {
            "rows": report.rows,
            "created": report.created,
            "updated": report.updated,
            "skipped": report.skipped,
            "notes": report.notes,
        },
    }
    pending["digest"] = _digest(pending)
    request.session[PENDING_KEY] = pending


@hematologist_required
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest) -> HttpResponse:
    """Upload a CSV file: a refused file is listed row by row; an accepted one goes to the preview."""
    form = forms.ImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        filename, content = data["file"]
        options = {"kind": data["kind"], "correct": data["correct"], "reason": data["reason"]}
        report = imports.run_import(
            filename=filename, data=content, user=request.user, dry_run=True, **options, **_scope(request)
        )
        _log_refused(request, report)
        if report.ok:
            _keep_pending(request, options, filename, content, report)
            return redirect("patients:import-preview")
    return render(request, "patients/import_upload.html", {"form": form, "report": report})


@hematologist_required
def import_preview(request: HttpRequest) -> HttpResponse:
    """What the accepted file would do; the confirmation imports exactly this content."""
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or _valid_pending(request, str(pending.get("digest"))) is None:
        messages.info(request, _("There is no file waiting for confirmation: upload one."))
        return redirect("patients:import")
    form = forms.ImportConfirmForm(initial={"digest": pending["digest"]})
    context = {"pending": pending, "preview": pending["preview"], "form": form}
    return render(request, "patients/import_preview.html", context)


@hematologist_required
@require_POST
def import_confirm(request: HttpRequest) -> HttpResponse:
    """Import the previewed file in one transaction, then show the outcome."""
    form = forms.ImportConfirmForm(request.POST)
    pending = _valid_pending(request, form.cleaned_data["digest"]) if form.is_valid() else None
    if pending is None:
        messages.error(
            request,
            _(
                "This preview is no longer valid (expired, replaced by another upload, or already "
                "imported). Nothing was imported: upload the file again."
            ),
        )
        return redirect("patients:import")
    del request.session[PENDING_KEY]  # one confirmation per preview
    report = imports.run_import(
        pending["kind"],
        pending["text"],
        filename=pending["filename"],
        user=request.user,
        correct=pending["correct"],
        reason=pending["reason"],
        **_scope(request),
    )
    _log_refused(request, report)
    return redirect("patients:import-result", transfer=report.transfer_id)


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
