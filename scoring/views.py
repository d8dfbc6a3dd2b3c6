"""Score model pages and site parameters (hematologists; SPEC 5, 8.5)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from crsrisk.accounts.access import hematologist_required
from crsrisk.jobs.models import Job
from crsrisk.jobs.services import job_start
from patients import services as patient_services
from patients.forms import SiteParametersForm, add_service_errors
from patients.models import SiteParameters
from scoring import cohort_charts, cohort_selectors, selectors
from scoring.cohort import cohort_constants, cohort_report
from scoring.fitting import engine
from scoring.fitting.charts import fit_report_figures
from scoring.fitting.engine import REPORT_FORMAT
from scoring.fitting.local import fitted_draft_name
from scoring.fitting.report import fit_report_view
from scoring.forms import FitForm, ModelDraftForm, ModelEditForm, RetireForm
from scoring.models import ModelStatus, Provenance, ScoreModel
from scoring.rules import bcell
from scoring.services import (
    score_model_create_draft,
    score_model_retire,
    score_model_update,
)


@hematologist_required
def model_list(request: HttpRequest) -> HttpResponse:
    """Every score model version with its status and provenance."""
    return render(request, "scoring/model_list.html", {"models": selectors.score_models()})


@hematologist_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A model card: factors, cut-points, points, bands, provenance and history."""
    model = get_object_or_404(ScoreModel.objects.select_related("derived_from"), name=name)
    context = {"model": model, **selectors.score_model_views(model)}
    if model.status == ModelStatus.DRAFT:
        context["what_if"] = selectors.score_model_what_if(model, user=request.user)
    if model.status == ModelStatus.ACTIVE:
        context["fit_form"] = FitForm()
    return render(request, "scoring/model_detail.html", context)


@hematologist_required
@require_http_methods(["GET", "POST"])
def model_new(request: HttpRequest, name: str) -> HttpResponse:
    """A new draft version copied from this model (entered, edited or published)."""
    source = get_object_or_404(ScoreModel, name=name)
    initial = {"provenance": Provenance.EDITED, "name": f"{source.name}-edit"}
    form = ModelDraftForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            draft = score_model_create_draft(user=request.user, source=source, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Draft %(name)s created from %(source)s. Edit its cut-points, then activate it.")
                % {"name": draft.name, "source": source.name},
            )
            return redirect("scoring:model-edit", name=draft.name)
    return render(request, "scoring/model_new.html", {"form": form, "source": source})


@hematologist_required
@require_http_methods(["GET", "POST"])
def model_edit(request: HttpRequest, name: str) -> HttpResponse:
    """The editor of a draft: factors, cut-points, points, bands, provenance; with a reason."""
    model = get_object_or_404(ScoreModel, name=name)
    if model.status != ModelStatus.DRAFT:
        messages.error(
            request,
            _("%(name)s is not a draft and cannot be edited: create a new version from it.")
            % {"name": model.name},
        )
        return redirect(model)
    form = ModelEditForm(request.POST or None, model=model, initial=ModelEditForm.initial_for(model))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            score_model_update(
                user=request.user,
                model=model,
                expected_revision=data["version"],
                reason=data["reason"],
                spec=form.spec(),
                provenance=data["provenance"],
                citation=data["citation"],
                description=data["description"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Draft %(name)s saved.") % {"name": model.name})
            return redirect(model)
    stale = selectors.stale_rationale_rows(model)
    return render(request, "scoring/model_edit.html", {"form": form, "model": model, "stale": stale})


@hematologist_required
@require_http_methods(["GET", "POST"])
def model_retire(request: HttpRequest, name: str) -> HttpResponse:
    """Retire a draft with a reason; it stays readable and can still be copied."""
    model = get_object_or_404(ScoreModel, name=name)
    form = RetireForm(request.POST or None, initial={"version": model.revision})
    if request.method == "POST" and form.is_valid():
        try:
            score_model_retire(
                user=request.user,
                model=model,
                expected_revision=form.cleaned_data["version"],
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("%(name)s is retired.") % {"name": model.name})
            return redirect(model)
    return render(request, "scoring/model_retire.html", {"form": form, "model": model})


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
    """Queue the activation of a version; a job recomputes every patient under it."""
    model = get_object_or_404(ScoreModel, name=name)
    if model.status == ModelStatus.ACTIVE:
        messages.info(request, _("%(name)s is already the active model.") % {"name": model.name})
    elif request.POST.get("confirm") != "1":
        messages.error(request, _("Tick the confirmation box to activate %(name)s.") % {"name": model.name})
    elif not (request.POST.get("revision") or "").isdigit():
        messages.error(request, _("The form lost the model's revision: reload the page and try again."))
    else:
        try:
            job = job_start(
                kind=Job.Kind.MODEL_ACTIVATION,
                user=request.user,
                params={"model_id": model.pk, "revision": int(request.POST["revision"])},
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            return redirect(job)
    return redirect(model)


@hematologist_required
@require_POST
def model_fit(request: HttpRequest) -> HttpResponse:
    """Queue a local fit from the active model's card; the job stores a draft and its report."""
    active = ScoreModel.objects.active()
    form = FitForm(request.POST)
    if form.is_valid():
        params = dict(form.cleaned_data)
        design = engine.DESIGN_LANDMARK if params["landmark"] else engine.DESIGN_AS_PUBLISHED
        params["name"] = params["name"] or fitted_draft_name(design)
        try:
            job = job_start(kind=Job.Kind.MODEL_FIT, user=request.user, params=params)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(job)
    context = {"model": active, "fit_form": form, **selectors.score_model_views(active)}
    return render(request, "scoring/model_detail.html", context, status=400)


@hematologist_required
@require_http_methods(["GET", "POST"])
def site_parameters(request: HttpRequest) -> HttpResponse:
    """Edit the clinical site parameters; a job saves the change (audited) and recomputes all patients."""
    params = SiteParameters.load()
    initial = {f: getattr(params, f) for f in patient_services.SITE_FIELDS} | {"version": params.version}
    form = SiteParametersForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        if not form.recomputes():
            return _site_parameters_save_now(request, form)
        try:
            job = job_start(kind=Job.Kind.SITE_PARAMETERS, user=request.user, params=dict(form.cleaned_data))
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return redirect(job)
    history = params.history.select_related("history_user").order_by("-history_date")[:20]
    return render(
        request, "scoring/site_parameters.html", {"form": form, "params": params, "history": history}
    )


def _site_parameters_save_now(request: HttpRequest, form: SiteParametersForm) -> HttpResponse:
    """A change that recomputes nothing (the usual units) is saved in the request."""
    data = dict(form.cleaned_data)
    version, reason = data.pop("version"), data.pop("reason")
    try:
        patient_services.site_parameters_update(
            user=request.user, expected_version=version, reason=reason, **data
        )
    except ValidationError as exc:
        add_service_errors(form, exc)
        params = SiteParameters.load()
        history = params.history.select_related("history_user").order_by("-history_date")[:20]
        context = {"form": form, "params": params, "history": history}
        return render(request, "scoring/site_parameters.html", context, status=400)
    messages.success(
        request, _("Site parameters saved; the usual units change no result, so nothing was recomputed.")
    )
    return redirect("scoring:site-parameters")


@hematologist_required
def cohort(request: HttpRequest) -> HttpResponse:
    """Cohort analytics: grades, ROC, calibration and landmark RFS (SPEC 6)."""
    inputs = cohort_selectors.cohort_patients(request.user)
    report = cohort_report(inputs.patients)
    context = {
        "inputs": inputs,
        "report": report,
        "charts": cohort_charts.cohort_figures(report),
        "rfs_regeneration_rows": cohort_charts.survival_rows(report.rfs_regeneration),
        "rfs_regeneration_excluded": cohort_charts.exclusion_rows(report.rfs_regeneration),
        "rfs_therapy_rows": cohort_charts.survival_rows(report.rfs_therapy),
        "rfs_therapy_excluded": cohort_charts.exclusion_rows(report.rfs_therapy),
        "calibration_bands": [(cohort_charts.band_label(r.label), r) for r in report.calibration.by_band],
        "constants": cohort_constants(),
        "evidence": _(bcell.EARLY_REGENERATION_EVIDENCE),
        "aplasia_caveat": _(bcell.APLASIA_CAVEAT),
    }
    return render(request, "scoring/cohort.html", context)
