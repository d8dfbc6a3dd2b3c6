"""Score model pages and site parameters (hematologists; SPEC 5, 8.5)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from crsrisk.accounts.access import hematologist_required
from patients import services as patient_services
from patients.forms import SiteParametersForm, add_service_errors
from patients.models import SiteParameters
from scoring import selectors
from scoring.fitting.charts import fit_report_figures
from scoring.fitting.engine import REPORT_FORMAT
from scoring.fitting.report import fit_report_view
from scoring.models import ModelStatus, ScoreModel
from scoring.services import score_model_activate


@hematologist_required
def model_list(request: HttpRequest) -> HttpResponse:
    """Every score model version with its status and provenance."""
    return render(request, "scoring/model_list.html", {"models": selectors.score_models()})


@hematologist_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A model card: factors, cut-points, points, bands, provenance and history."""
    model = get_object_or_404(ScoreModel, name=name)
    return render(
        request, "scoring/model_detail.html", {"model": model, **selectors.score_model_views(model)}
    )


@hematologist_required
def model_report(request: HttpRequest, name: str) -> HttpResponse:
    """The fit report of a fitted model: cohort, tables, performance and sample size (SPEC 5)."""
    model = get_object_or_404(ScoreModel, name=name)
    report = model.fit_report
    readable = isinstance(report, dict) and report.get("format") == REPORT_FORMAT
    context = {"model": model, "has_report": bool(report), "report": None}
    if readable:
        context |= {"report": fit_report_view(report), "figures": fit_report_figures(report)}
    return render(request, "scoring/model_report.html", context)


@hematologist_required
@require_POST
def model_activate(request: HttpRequest, name: str) -> HttpResponse:
    """Activate a version; every patient is recomputed under it."""
    model = get_object_or_404(ScoreModel, name=name)
    if model.status == ModelStatus.ACTIVE:
        messages.info(request, _("%(name)s is already the active model.") % {"name": model.name})
    elif request.POST.get("confirm") != "1":
        messages.error(request, _("Tick the confirmation box to activate %(name)s.") % {"name": model.name})
    else:
        count = score_model_activate(model=model, user=request.user)
        messages.success(
            request,
            _("%(name)s is now active; %(count)d patients were recomputed.")
            % {"name": model.name, "count": count},
        )
    return redirect(model)


@hematologist_required
@require_http_methods(["GET", "POST"])
def site_parameters(request: HttpRequest) -> HttpResponse:
    """Edit the clinical site parameters; every change is audited and recomputes all patients."""
    params = SiteParameters.load()
    initial = {f: getattr(params, f) for f in patient_services.SITE_FIELDS} | {"version": params.version}
    form = SiteParametersForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        version, reason = data.pop("version"), data.pop("reason")
        try:
            patient_services.site_parameters_update(
                user=request.user, expected_version=version, reason=reason, **data
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Site parameters saved; every patient was recomputed."))
            return redirect("scoring:site-parameters")
    history = params.history.select_related("history_user").order_by("-history_date")[:20]
    return render(
        request, "scoring/site_parameters.html", {"form": form, "params": params, "history": history}
    )
