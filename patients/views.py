"""Ward pages: thin views (GET → selector → render; POST → form → one service → redirect)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from crsrisk.accounts.access import (
    clinical_required,
    get_patient_or_404,
    hematologist_required,
    log_access,
    log_list_access,
)
from crsrisk.accounts.roles import care_teams_of, is_hematologist
from patients import forms, selectors, services
from patients.models import CareTeam, Observation, Patient
from scoring import charts
from scoring.i18n import analyte_label
from scoring.models import Alert
from scoring.rules.units import format_decimal, from_canonical
from scoring.selectors import timeline
from scoring.services import site_zone

GET_POST = ["GET", "POST"]
REGISTER_PAGE = "patient registration"


def _teams(request: HttpRequest) -> QuerySet[CareTeam]:
    """The care teams a user may register patients into."""
    return care_teams_of(request.user)


def _confirmed(request: HttpRequest, form: Any) -> bool:
    """A confirmation counts only for the very values that were shown with their warnings."""
    return request.POST.get("confirmed") == "1" and form.cleaned_data.get("confirm_digest") == form.digest()


@clinical_required
def ward(request: HttpRequest) -> HttpResponse:
    """The ward list, sorted by risk (SPEC 8.1)."""
    query = request.GET.get("q", "")
    model, rows = selectors.ward_rows(request.user, today=timezone.localdate(), query=query)
    log_list_access(request, [row.patient.mrn for row in rows], "ward list")
    return render(request, "patients/ward_list.html", {"rows": rows, "model": model, "query": query})


@clinical_required
def detail(request: HttpRequest, mrn: str) -> HttpResponse:
    """The patient timeline: charts, score breakdown, caveats, alerts and records."""
    patient = get_patient_or_404(request, mrn, "patient timeline")
    today = timezone.localdate()
    tl = timeline(patient, today=today)
    record = selectors.patient_record(patient)
    figures = charts.timeline_figures(
        rows=tl.rows,
        summary=tl.summary,
        model=tl.model.to_spec(),
        labs=record.live_labs,
        tz=site_zone(),
        infusion_date=patient.infusion.infusion_date,
        window_days=tl.params.regeneration_window_days,
        threshold=tl.params.bcell_threshold,
        grade_reasons=tl.grade_reasons,
    )
    reminders = selectors.patient_reminders(
        patient,
        today_day=tl.today_day,
        summary=tl.summary,
        model=tl.model.name,
        bcell_labs=[lab for lab in record.live_labs if lab.analyte == "bcell"],
        observations=record.live_observations,
    )
    context = {"patient": patient, "tl": tl, "record": record, "figures": figures, "reminders": reminders}
    return render(request, "patients/patient_detail.html", context)


@clinical_required
@require_http_methods(GET_POST)
def register(request: HttpRequest) -> HttpResponse:
    """Register a patient and their infusion."""
    teams = _teams(request)
    form = forms.PatientForm(request.POST or None, teams=teams)
    needs_confirmation = False
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_register(
                user=request.user, confirmed=_confirmed(request, form), **form.service_values()
            )
        except services.NeedsConfirmation as exc:
            form.warnings, needs_confirmation = [w for ws in exc.warnings.values() for w in ws], True
        except ValidationError as exc:
            if services.is_existing_mrn_error(exc):  # a probe for an MRN, maybe another team's
                log_access(request, form.cleaned_data["mrn"], REGISTER_PAGE, granted=False)
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, _("Patient %(mrn)s registered.") % {"mrn": patient.mrn})
            return redirect(patient)
    context = {
        "form": form,
        "teams": teams,
        "needs_confirmation": needs_confirmation,
        "digest": form.digest() if needs_confirmation else "",
    }
    return render(request, "patients/patient_form.html", context)


@clinical_required
@require_http_methods(GET_POST)
def edit(request: HttpRequest, mrn: str) -> HttpResponse:
    """Edit demographics and infusion data, with a reason."""
    patient = get_patient_or_404(request, mrn, "patient edit")
    hema = is_hematologist(request.user)
    initial = {
        f: getattr(patient, f)
        for f in ("name", "sex", "birth_date", "diagnosis", "monitoring_end_day", "version")
    }
    initial["care_team"] = patient.care_team_id
    initial.update({f: getattr(patient.infusion, f) for f in services.INFUSION_FIELDS})
    teams = _teams(request) | CareTeam.objects.filter(pk=patient.care_team_id)
    form = forms.PatientEditForm(
        request.POST or None, initial=initial, teams=teams.distinct(), can_set_monitoring=hema
    )
    needs_confirmation = False
    if request.method == "POST" and form.is_valid():
        data = form.service_values()
        version, reason = data.pop("version"), data.pop("reason")
        try:
            services.patient_update(
                user=request.user,
                patient=patient,
                expected_version=version,
                reason=reason,
                confirmed=_confirmed(request, form),
                **data,
            )
        except services.NeedsConfirmation as exc:
            form.warnings, needs_confirmation = [w for ws in exc.warnings.values() for w in ws], True
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, _("Patient record updated."))
            return redirect(patient)
    context = {
        "form": form,
        "patient": patient,
        "needs_confirmation": needs_confirmation,
        "digest": form.digest() if needs_confirmation else "",
    }
    return render(request, "patients/patient_form.html", context)


@clinical_required
@require_http_methods(GET_POST)
def lab_entry(request: HttpRequest, mrn: str) -> HttpResponse:
    """One collection time, all analytes, each with its unit; confirm unusual values."""
    patient = get_patient_or_404(request, mrn, "lab entry")
    needs_confirmation = False
    if request.method == "POST":
        # A bound form shows what was posted: the usual units (its initial units) are read
        # by the service, once with the clinical parameters, under the patient's lock.
        form = forms.LabPanelForm(request.POST)
        if form.is_valid():
            try:
                services.lab_panel_record(
                    user=request.user,
                    patient=patient,
                    collected_at=form.collected_at(),
                    entries=form.entries(),
                    confirmed=_confirmed(request, form),
                )
            except services.NeedsConfirmation as exc:
                form.warnings, needs_confirmation = exc.warnings, True
            except ValidationError as exc:
                forms.add_service_errors(form, exc, form.field_map())
            else:
                messages.success(request, _("Lab panel saved; the results below are recomputed."))
                return redirect(patient)
    else:
        now = timezone.localtime()
        form = forms.LabPanelForm(
            initial={"collected_date": now.date(), "collected_time": now.strftime("%H:%M")},
            usual_units=services.usual_units(),
        )
    context = {
        "patient": patient,
        "form": form,
        "needs_confirmation": needs_confirmation,
        "digest": form.digest() if needs_confirmation else "",
    }
    return render(request, "patients/lab_entry.html", context)


@clinical_required
@require_http_methods(GET_POST)
def lab_correct(request: HttpRequest, mrn: str, pk: int) -> HttpResponse:
    """Correct one lab value with a reason; the old value stays in the history."""
    patient = get_patient_or_404(request, mrn, "lab correction")
    lab = get_object_or_404(patient.labs.active(), pk=pk)
    local = lab.collected_at.astimezone(site_zone())
    unit = services.usual_units()[lab.analyte]  # shown in the unit the ward types
    initial = {
        "value": f"{lab.comparator}{format_decimal(from_canonical(lab.analyte, lab.value, unit))}",
        "unit": unit,
        "collected_date": local.date(),
        "collected_time": local.strftime("%H:%M"),
        "version": lab.version,
    }
    form = forms.LabCorrectForm(request.POST or None, initial=initial, analyte=lab.analyte)
    needs_confirmation = False
    if request.method == "POST" and form.is_valid():
        try:
            services.lab_correct(
                user=request.user,
                lab=lab,
                expected_version=form.cleaned_data["version"],
                value=form.cleaned_data["value"],
                unit=form.cleaned_data["unit"],
                reason=form.cleaned_data["reason"],
                collected_at=form.collected_at(),
                confirmed=_confirmed(request, form),
            )
        except services.NeedsConfirmation as exc:
            form.warnings = [w for ws in exc.warnings.values() for w in ws]
            needs_confirmation = True
        except ValidationError as exc:
            forms.add_service_errors(form, exc, {lab.analyte: "value", "collected_at": "collected_date"})
        else:
            messages.success(request, _("Lab value corrected."))
            return redirect(patient)
    context = {
        "patient": patient,
        "lab": lab,
        "form": form,
        "needs_confirmation": needs_confirmation,
        "digest": form.digest() if needs_confirmation else "",
    }
    return render(request, "patients/lab_correct.html", context)


def _void(
    request: HttpRequest, patient: Patient, obj: Any, service: Any, kwarg: str, what: str
) -> HttpResponse:
    """Shared void flow: a reason, the version, one service call, then back to the patient."""
    form = forms.VoidForm(request.POST or None, initial={"version": obj.version})
    if request.method == "POST" and form.is_valid():
        try:
            service(
                user=request.user,
                expected_version=form.cleaned_data["version"],
                reason=form.cleaned_data["reason"],
                **{kwarg: obj},
            )
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, _("Voided: %(what)s.") % {"what": what})
            return redirect(patient)
    return render(
        request, "patients/void_form.html", {"patient": patient, "form": form, "what": what, "obj": obj}
    )


@clinical_required
@require_http_methods(GET_POST)
def lab_void(request: HttpRequest, mrn: str, pk: int) -> HttpResponse:
    patient = get_patient_or_404(request, mrn, "lab void")
    lab = get_object_or_404(patient.labs.active(), pk=pk)
    local = lab.collected_at.astimezone(site_zone())
    what = f"{analyte_label(lab.analyte)} {lab.comparator}{format_decimal(lab.value)} "
    what += f"{lab.canonical_unit} ({local:%Y-%m-%d %H:%M})"
    return _void(request, patient, lab, services.lab_void, "lab", what)


def _parse_day(text: str | None) -> date | None:
    try:
        return parse_date(text or "")
    except ValueError:
        return None


def _existing_observation(patient: Patient, day_text: str | None) -> Observation | None:
    day = _parse_day(day_text)
    return None if day is None else patient.observations.active().filter(date=day).first()


@clinical_required
@require_http_methods(GET_POST)
def observation_entry(request: HttpRequest, mrn: str) -> HttpResponse:
    """A day's bedside observation; an existing day is updated with a reason."""
    patient = get_patient_or_404(request, mrn, "observation entry")
    existing = _existing_observation(patient, request.POST.get("date") or request.GET.get("date"))
    recorded = existing.oxygen if existing is not None and existing.oxygen != "none" else None
    if request.method == "POST":
        form = forms.ObservationForm(request.POST, recorded_oxygen=recorded)
        if form.is_valid():
            try:
                services.observation_record(
                    user=request.user,
                    patient=patient,
                    date=form.cleaned_data["date"],
                    expected_version=form.cleaned_data["version"],
                    reason=form.cleaned_data["reason"],
                    note=form.cleaned_data["note"],
                    **form.values(),
                )
            except ValidationError as exc:
                forms.add_service_errors(form, exc)
                if existing is not None and form.cleaned_data["version"] is None:
                    # The page now shows the stored day: a second save, with a reason, replaces it.
                    form.data = form.data.copy()
                    form.data["version"] = str(existing.version)
            else:
                messages.success(request, _("Observation saved; the CRS grade is recomputed."))
                return redirect(patient)
    elif existing is not None:
        form = forms.ObservationForm(initial=forms.observation_initial(existing), recorded_oxygen=recorded)
    else:
        day = _parse_day(request.GET.get("date"))
        form = forms.ObservationForm(initial={"date": day or timezone.localdate(), "vasopressors": 0})
    on = _parse_day(request.POST.get("date") or request.GET.get("date")) or timezone.localdate()
    context = {
        "patient": patient,
        "form": form,
        "existing": existing,
        "sbp_norm": forms.sbp_norm_mmhg(patient.birth_date, on),
    }
    return render(request, "patients/observation_form.html", context)


@clinical_required
@require_http_methods(GET_POST)
def observation_void(request: HttpRequest, mrn: str, pk: int) -> HttpResponse:
    patient = get_patient_or_404(request, mrn, "observation void")
    obs = get_object_or_404(patient.observations.active(), pk=pk)
    what = _("observation of %(date)s") % {"date": obs.date.isoformat()}
    return _void(request, patient, obs, services.observation_void, "observation", what)


@hematologist_required
@require_http_methods(GET_POST)
def event_entry(request: HttpRequest, mrn: str) -> HttpResponse:
    """Record an event or outcome (hematologists)."""
    patient = get_patient_or_404(request, mrn, "event entry")
    form = forms.EventForm(request.POST or None, initial={"date": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            services.event_record(user=request.user, patient=patient, **form.cleaned_data)
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, _("Event recorded."))
            return redirect(patient)
    return render(request, "patients/event_form.html", {"patient": patient, "form": form})


@hematologist_required
@require_http_methods(GET_POST)
def event_void(request: HttpRequest, mrn: str, pk: int) -> HttpResponse:
    patient = get_patient_or_404(request, mrn, "event void")
    event = get_object_or_404(patient.events.active(), pk=pk)
    what = f"{event.get_kind_display()} {event.date.isoformat()}"
    return _void(request, patient, event, services.event_void, "event", what)


@hematologist_required
@require_http_methods(GET_POST)
def override(request: HttpRequest, mrn: str) -> HttpResponse:
    """Set a day's CRS grade by hand, with a reason (hematologists)."""
    patient = get_patient_or_404(request, mrn, "grade override")
    initial = {"date": request.GET.get("date") or timezone.localdate()}
    form = forms.OverrideForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.grade_override_set(user=request.user, patient=patient, **form.cleaned_data)
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, _("CRS grade recorded; the computed grade is kept as well."))
            return redirect(patient)
    return render(request, "patients/override_form.html", {"patient": patient, "form": form})


@hematologist_required
@require_http_methods(GET_POST)
def override_void(request: HttpRequest, mrn: str, pk: int) -> HttpResponse:
    """Remove a grade override with a reason; the computed grade applies again."""
    patient = get_patient_or_404(request, mrn, "grade override removal")
    override = get_object_or_404(patient.grade_overrides.active(), pk=pk)
    what = _("CRS grade override of %(date)s") % {"date": override.date.isoformat()}
    return _void(request, patient, override, services.grade_override_void, "override", what)


@hematologist_required
@require_http_methods(GET_POST)
def alert_ack(request: HttpRequest, mrn: str, pk: int) -> HttpResponse:
    """Acknowledge an alert with a note (hematologists); the alert is kept."""
    patient = get_patient_or_404(request, mrn, "alert acknowledgement")
    alert = get_object_or_404(Alert, patient=patient, pk=pk)
    form = forms.AlertAckForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.alert_acknowledge(user=request.user, alert=alert, note=form.cleaned_data["note"])
        except ValidationError as exc:
            forms.add_service_errors(form, exc)
        else:
            messages.success(request, _("Alert acknowledged."))
            return redirect(patient)
    return render(request, "patients/alert_ack.html", {"patient": patient, "alert": alert, "form": form})


@clinical_required
def history(request: HttpRequest, mrn: str) -> HttpResponse:
    """The record's change history: who, when, what, old → new, why."""
    patient = get_patient_or_404(request, mrn, "record history")
    entries = selectors.record_history(patient)
    return render(request, "patients/history.html", {"patient": patient, "entries": entries})
