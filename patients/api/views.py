"""HTTP API views (SPEC 8.4): thin, one service call per write, access through one helper."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crsrisk.accounts.access import get_patient_or_404, log_access, log_list_access
from crsrisk.accounts.authentication import TokenAuthentication
from crsrisk.accounts.roles import care_teams_of, is_clinical, is_hematologist, visible_patients
from crsrisk.api_parsers import FhirJSONParser, JSONParser
from patients import services
from patients.api import idempotency
from patients.api import serializers as s
from patients.api.batch import LabItem, record_lab_items
from patients.api.fhir import export_patient_bundle, import_bundle
from patients.models import CareTeam, ClinicalEvent, GradeOverride, LabResult, Observation, Patient, Source
from scoring.models import DailyAssessment, ModelStatus, PatientSummary, ScoreModel

TREND_NOTE = (
    "Running score: a trend. The model is validated on day 7 only; before day 7, and with a "
    "lab factor missing, the value is provisional."
)
PROVISIONAL_NOTE = (
    " provisional-v0 uses cut-points chosen by this project from clinical conventions, "
    "not the published weights of Ke et al. 2025."
)


# --- access --------------------------------------------------------------------------------


class IsClinical(BasePermission):
    message = "The clinical API is for clinicians and hematologists; admin accounts see no clinical data."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_clinical(request.user)


class IsHematologist(BasePermission):
    message = "This action is for hematologists."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_hematologist(request.user)


class HematologistWrites(BasePermission):
    """Clinicians read; only hematologists record events and grade overrides (SPEC 7)."""

    message = "Recording events and grade overrides is for hematologists."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in SAFE_METHODS:
            return is_clinical(request.user)
        return is_hematologist(request.user)


class ClinicalSchema(AutoSchema):
    """Every write documents the optional ``Idempotency-Key`` header."""

    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        if self.method in idempotency.METHODS:
            params.append(
                OpenApiParameter(
                    idempotency.HEADER,
                    str,
                    OpenApiParameter.HEADER,
                    description=(
                        "A unique key (e.g. a UUID) per request: a retry with the same key and body gets the "
                        "first answer and stores nothing; the same key with another body answers 409."
                    ),
                )
            )
        return params


class ClinicalView(APIView):
    """Token first, so that an anonymous request gets 401 with ``WWW-Authenticate: Token``."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsClinical]
    schema = ClinicalSchema()
    # A 200 of this view's writes means "nothing new was stored" (an exact repeat, a dry run),
    # so only a 201 records an Idempotency-Key.
    stores_only_when_created = False
    _idempotency_key: Any = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """A write with an ``Idempotency-Key`` runs in one transaction with its key (SPEC 9)."""
        self._idempotency_key = None
        if request.method not in idempotency.METHODS or idempotency.HEADER not in request.headers:
            return super().dispatch(request, *args, **kwargs)
        with transaction.atomic():
            response = super().dispatch(request, *args, **kwargs)
            if self._idempotency_key is not None:
                code = response.status_code
                stored = code == 201 if self.stores_only_when_created else 200 <= code < 300
                idempotency.finish(self._idempotency_key, response, stored=stored)
        return response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authenticated and allowed first: keys are per user
        if idempotency.wants_key(request):
            self._idempotency_key = idempotency.claim(request)

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        if isinstance(exc, idempotency.IdempotencyAnswer):
            # The stored answer may hold clinical values: a replay is a read of the patient,
            # checked and logged again (a user no longer in the team gets 404).
            mrn = self.kwargs.get("mrn")
            if mrn is not None:
                page = self.request.resolver_match.view_name if self.request.resolver_match else "api"
                try:
                    get_patient_or_404(self.request, mrn, page, log=True)
                except Http404:
                    return super().handle_exception(
                        NotFound(f"No patient with MRN {mrn} in your care teams.")
                    )
            return exc.response  # a replay is a plain HttpResponse
        return super().handle_exception(exc)

    def get_patient(self, mrn: str) -> Patient:
        """The patient if the user's care teams include them; a GET is written to the access log."""
        page = self.request.resolver_match.view_name if self.request.resolver_match else "api"
        try:
            return get_patient_or_404(self.request, mrn, page, log=self.request.method in SAFE_METHODS)
        except Http404:
            raise NotFound(f"No patient with MRN {mrn} in your care teams.") from None


def _row(qs: QuerySet[Any], pk: int, what: str) -> Any:
    row = qs.filter(pk=pk).first()
    if row is None:
        raise NotFound(f"No {what} {pk} for this patient.")
    return row


def _user_teams(user: Any) -> QuerySet[CareTeam]:
    return care_teams_of(user)


def _care_team(user: Any, name: str | None) -> CareTeam:
    """One of the user's care teams: registering elsewhere would hide the patient from them."""
    teams = _user_teams(user)
    names = ", ".join(t.name for t in teams) or "none"
    if name is None:
        if teams.count() == 1:
            return teams.get()
        raise ValidationError({"care_team": f"Name the care team; yours: {names}."})
    team = teams.filter(name=name).first()
    if team is None:
        raise ValidationError({"care_team": f"{name!r} is not one of your care teams ({names})."})
    return team


def _patient_out(patient: Patient) -> dict[str, Any]:
    fresh = Patient.objects.select_related("infusion", "care_team").get(pk=patient.pk)
    return dict(s.PatientSerializer(fresh).data)


# --- patients ------------------------------------------------------------------------------


class PatientListView(ClinicalView):
    @extend_schema(responses=s.PatientSerializer(many=True), summary="Patients of your care teams (logged)")
    def get(self, request: Request) -> Response:
        patients = list(
            visible_patients(request.user).select_related("infusion", "care_team").order_by("mrn")
        )
        log_list_access(request, [p.mrn for p in patients], "api:patient-list")
        return Response(s.PatientSerializer(patients, many=True).data)

    @extend_schema(
        request=s.PatientCreateSerializer, responses={201: s.PatientSerializer}, summary="Register"
    )
    def post(self, request: Request) -> Response:
        ser = s.PatientCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = dict(ser.validated_data)
        notes = services.mrd_values(data)
        data["care_team"] = _care_team(request.user, data.get("care_team"))
        try:
            patient = services.patient_register(user=request.user, confirmed=data.pop("confirm"), **data)
        except DjangoValidationError as exc:
            if services.is_existing_mrn_error(exc):  # a probe for an MRN, maybe another team's
                log_access(request, data["mrn"], "api:patient-list", granted=False)
            raise
        return Response({**_patient_out(patient), "notes": notes}, status=status.HTTP_201_CREATED)


class PatientDetailView(ClinicalView):
    @extend_schema(responses=s.PatientSerializer, summary="One patient (logged)")
    def get(self, request: Request, mrn: str) -> Response:
        return Response(_patient_out(self.get_patient(mrn)))

    @extend_schema(
        request=s.PatientUpdateSerializer, responses=s.PatientSerializer, summary="Edit, with version"
    )
    def patch(self, request: Request, mrn: str) -> Response:
        patient = self.get_patient(mrn)
        ser = s.PatientUpdateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        changes = dict(ser.validated_data)
        notes = services.mrd_values(changes)
        version, reason = changes.pop("version"), changes.pop("reason")
        confirmed = changes.pop("confirm")
        if "care_team" in changes:
            changes["care_team"] = _care_team(request.user, changes["care_team"])
        if "monitoring_end_day" in changes and not is_hematologist(request.user):
            raise ValidationError({"monitoring_end_day": "Only hematologists end or extend monitoring."})
        services.patient_update(
            user=request.user,
            patient=patient,
            expected_version=version,
            reason=reason,
            confirmed=confirmed,
            **changes,
        )
        return Response({**_patient_out(patient), "notes": notes})


# --- labs ----------------------------------------------------------------------------------

LAB_CREATE = PolymorphicProxySerializer(
    component_name="LabCreate",
    serializers=[s.LabInSerializer, s.LabInSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


class LabListView(ClinicalView):
    stores_only_when_created = True

    @extend_schema(
        responses=s.LabSerializer(many=True),
        parameters=[OpenApiParameter("analyte", str, description="Only this analyte code.")],
        summary="Live lab values (logged)",
    )
    def get(self, request: Request, mrn: str) -> Response:
        patient = self.get_patient(mrn)
        labs = LabResult.objects.active().filter(patient=patient).select_related("entered_by")
        if analyte := request.query_params.get("analyte"):
            labs = labs.filter(analyte=analyte)
        return Response(s.LabSerializer(labs.order_by("collected_at", "analyte"), many=True).data)

    @extend_schema(
        request=LAB_CREATE,
        responses={201: s.LabBatchResultSerializer, 200: s.LabBatchResultSerializer},
        summary="Record one lab value, or a list: all or nothing",
    )
    def post(self, request: Request, mrn: str) -> Response:
        patient = self.get_patient(mrn)
        many = isinstance(request.data, list)
        if many and not request.data:
            raise ValidationError({"non_field_errors": ["Send one lab object or a non-empty list of them."]})
        ser = s.LabInSerializer(data=request.data, many=many)
        ser.is_valid(raise_exception=True)
        rows = ser.validated_data if many else [ser.validated_data]
        items = [
            LabItem(
                where=f"[{i}]" if many else "",
                patient=patient,
                analyte=row["analyte"],
                value=row["value"],
                unit=row["unit"],
                collected_at=row["collected_at"],
                note=row["note"],
                confirmed=row["confirm"],
            )
            for i, row in enumerate(rows)
        ]
        result = record_lab_items(user=request.user, items=items, source=Source.API, allow_exponent=True)
        body = {
            "stored": s.LabSerializer(result.stored, many=True).data,
            "skipped": s.LabSerializer(result.skipped, many=True).data,
            "warnings": result.warnings,
            "notes": result.notes,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.stored else status.HTTP_200_OK)


class LabDetailView(ClinicalView):
    @extend_schema(responses=s.LabSerializer, summary="One lab value (logged)")
    def get(self, request: Request, mrn: str, pk: int) -> Response:
        lab = _row(LabResult.objects.filter(patient=self.get_patient(mrn)), pk, "lab value")
        return Response(s.LabSerializer(lab).data)

    @extend_schema(
        request=s.LabCorrectSerializer, responses=s.LabCorrectedSerializer, summary="Correct, with version"
    )
    def patch(self, request: Request, mrn: str, pk: int) -> Response:
        lab = _row(LabResult.objects.filter(patient=self.get_patient(mrn)), pk, "lab value")
        ser = s.LabCorrectSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            lab = services.lab_correct(
                user=request.user,
                lab=lab,
                expected_version=d["version"],
                value=d["value"],
                unit=d["unit"],
                reason=d["reason"],
                collected_at=d.get("collected_at"),
                confirmed=d["confirm"],
                source=Source.API,
                allow_exponent=True,
            )
        except services.NeedsConfirmation as exc:
            raise services.NeedsConfirmation(
                {"value": [w for ws in exc.warnings.values() for w in ws]}
            ) from exc
        notes = [services.lab_unit_note(lab), services.lab_rounding_note(lab)]
        lab.notes = [n for n in notes if n]  # type: ignore[attr-defined]  # shown, not stored
        return Response(s.LabCorrectedSerializer(lab).data)


class LabVoidView(ClinicalView):
    @extend_schema(
        request=s.VoidSerializer, responses=s.LabSerializer, summary="Void, with version and reason"
    )
    def post(self, request: Request, mrn: str, pk: int) -> Response:
        lab = _row(LabResult.objects.filter(patient=self.get_patient(mrn)), pk, "lab value")
        ser = s.VoidSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        lab = services.lab_void(
            user=request.user,
            lab=lab,
            expected_version=ser.validated_data["version"],
            reason=ser.validated_data["reason"],
        )
        return Response(s.LabSerializer(lab).data)


# --- observations --------------------------------------------------------------------------


def _live_observations(patient: Patient) -> QuerySet[Observation]:
    return Observation.objects.active().filter(patient=patient).select_related("entered_by")


class ObservationListView(ClinicalView):
    @extend_schema(responses=s.ObservationSerializer(many=True), summary="Daily observations (logged)")
    def get(self, request: Request, mrn: str) -> Response:
        observations = _live_observations(self.get_patient(mrn)).order_by("date")
        return Response(s.ObservationSerializer(observations, many=True).data)

    @extend_schema(
        request=s.ObservationInSerializer,
        responses={201: s.ObservationSerializer, 200: s.ObservationSerializer},
        summary="Record a day (date in the body)",
    )
    def post(self, request: Request, mrn: str) -> Response:
        return _record_observation(request, self.get_patient(mrn), None)


class ObservationDetailView(ClinicalView):
    @extend_schema(responses=s.ObservationSerializer, summary="One day's observation (logged)")
    def get(self, request: Request, mrn: str, day: date) -> Response:
        obs = _live_observations(self.get_patient(mrn)).filter(date=day).first()
        if obs is None:
            raise NotFound(f"No observation on {day:%Y-%m-%d}.")
        return Response(s.ObservationSerializer(obs).data)

    @extend_schema(
        request=s.ObservationInSerializer,
        responses={201: s.ObservationSerializer, 200: s.ObservationSerializer},
        summary="Record or replace a day; a change needs version and reason",
    )
    def put(self, request: Request, mrn: str, day: date) -> Response:
        return _record_observation(request, self.get_patient(mrn), day)


def _record_observation(request: Request, patient: Patient, day: date | None) -> Response:
    ser = s.ObservationInSerializer(data=request.data)
    ser.is_valid(raise_exception=True)
    d = dict(ser.validated_data)
    body_day = d.pop("date", None)
    if day is None and body_day is None:
        raise ValidationError({"date": ["The date of the observation is required."]})
    if day is not None and body_day is not None and body_day != day:
        raise ValidationError({"date": [f"The body's date {body_day} differs from the URL's {day}."]})
    day = day or body_day
    existing = _live_observations(patient).filter(date=day).first()
    version = d.pop("version", None)
    if existing is not None and version is None:
        raise ValidationError(
            {
                "version": [
                    f"{day:%Y-%m-%d} already has an observation (version {existing.version}): "
                    "send that version and a reason to change it."
                ]
            }
        )
    obs = services.observation_record(
        user=request.user,
        patient=patient,
        date=day,
        expected_version=version,
        reason=d.pop("reason"),
        note=d.pop("note"),
        source=Source.API,
        **d,
    )
    code = status.HTTP_200_OK if existing is not None else status.HTTP_201_CREATED
    return Response(s.ObservationSerializer(obs).data, status=code)


class ObservationVoidView(ClinicalView):
    @extend_schema(request=s.VoidSerializer, responses=s.ObservationSerializer, summary="Void a day")
    def post(self, request: Request, mrn: str, day: date) -> Response:
        obs = _live_observations(self.get_patient(mrn)).filter(date=day).first()
        if obs is None:
            raise NotFound(f"No observation on {day:%Y-%m-%d}.")
        ser = s.VoidSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        obs = services.observation_void(
            user=request.user,
            observation=obs,
            expected_version=ser.validated_data["version"],
            reason=ser.validated_data["reason"],
        )
        return Response(s.ObservationSerializer(obs).data)


# --- events and grade overrides (hematologists write) --------------------------------------


class EventListView(ClinicalView):
    permission_classes = [HematologistWrites]

    @extend_schema(responses=s.EventSerializer(many=True), summary="Clinical events (logged)")
    def get(self, request: Request, mrn: str) -> Response:
        events = (
            ClinicalEvent.objects.active().filter(patient=self.get_patient(mrn)).select_related("entered_by")
        )
        return Response(s.EventSerializer(events.order_by("date", "kind"), many=True).data)

    @extend_schema(
        request=s.EventInSerializer, responses={201: s.EventSerializer}, summary="Record (hematologist)"
    )
    def post(self, request: Request, mrn: str) -> Response:
        patient = self.get_patient(mrn)
        ser = s.EventInSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        event = services.event_record(
            user=request.user, patient=patient, source=Source.API, **ser.validated_data
        )
        return Response(s.EventSerializer(event).data, status=status.HTTP_201_CREATED)


class EventVoidView(ClinicalView):
    permission_classes = [IsHematologist]

    @extend_schema(request=s.VoidSerializer, responses=s.EventSerializer, summary="Void (hematologist)")
    def post(self, request: Request, mrn: str, pk: int) -> Response:
        event = _row(ClinicalEvent.objects.filter(patient=self.get_patient(mrn)), pk, "event")
        ser = s.VoidSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        event = services.event_void(
            user=request.user,
            event=event,
            expected_version=ser.validated_data["version"],
            reason=ser.validated_data["reason"],
        )
        return Response(s.EventSerializer(event).data)


class OverrideListView(ClinicalView):
    permission_classes = [HematologistWrites]

    @extend_schema(responses=s.OverrideSerializer(many=True), summary="CRS grade overrides (logged)")
    def get(self, request: Request, mrn: str) -> Response:
        rows = (
            GradeOverride.objects.active().filter(patient=self.get_patient(mrn)).select_related("entered_by")
        )
        return Response(s.OverrideSerializer(rows.order_by("date"), many=True).data)

    @extend_schema(
        request=s.OverrideInSerializer,
        responses={201: s.OverrideSerializer},
        summary="Set a day's CRS grade by hand (hematologist)",
    )
    def post(self, request: Request, mrn: str) -> Response:
        patient = self.get_patient(mrn)
        ser = s.OverrideInSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        row = services.grade_override_set(user=request.user, patient=patient, **ser.validated_data)
        return Response(s.OverrideSerializer(row).data, status=status.HTTP_201_CREATED)


class OverrideVoidView(ClinicalView):
    permission_classes = [IsHematologist]

    @extend_schema(
        request=s.OverrideVoidSerializer, responses=s.OverrideSerializer, summary="Remove (hematologist)"
    )
    def post(self, request: Request, mrn: str, pk: int) -> Response:
        row = _row(
            GradeOverride.objects.active().filter(patient=self.get_patient(mrn)), pk, "live grade override"
        )
        ser = s.OverrideVoidSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        row = services.grade_override_void(
            user=request.user, override=row, reason=ser.validated_data["reason"]
        )
        return Response(s.OverrideSerializer(row).data)


# --- assessments ---------------------------------------------------------------------------


def _model_info(model: ScoreModel) -> dict[str, Any]:
    return {"name": model.name, "provenance": model.provenance, "version": model.version}


class AssessmentListView(ClinicalView):
    @extend_schema(responses=s.AssessmentsSerializer, summary="Risk trajectory: one row per day (logged)")
    def get(self, request: Request, mrn: str) -> Response:
        patient = self.get_patient(mrn)
        model = ScoreModel.objects.get(status=ModelStatus.ACTIVE)
        rows = DailyAssessment.objects.filter(patient=patient, model=model).order_by("day")
        note = TREND_NOTE + (PROVISIONAL_NOTE if model.provenance == "provisional" else "")
        body = {"mrn": patient.mrn, "model": _model_info(model), "note": note.strip(), "rows": rows}
        return Response(s.AssessmentsSerializer(body).data)


class SummaryView(ClinicalView):
    @extend_schema(
        responses=s.SummarySerializer, summary="Day-7 score, max CRS grade, B-cell status (logged)"
    )
    def get(self, request: Request, mrn: str) -> Response:
        patient = self.get_patient(mrn)
        model = ScoreModel.objects.get(status=ModelStatus.ACTIVE)
        rows = PatientSummary.objects.filter(patient=patient, model=model).select_related("patient", "model")
        if (summary := rows.first()) is None:
            raise NotFound(f"No results under {model.name} yet for {mrn}.")
        return Response(s.SummarySerializer(summary).data)


# --- FHIR ----------------------------------------------------------------------------------


def _check_bundle_size(data: Any) -> None:
    """Refuse a bundle of more entries than FHIR_MAX_BUNDLE_ENTRIES: one request, one worker."""
    limit = settings.FHIR_MAX_BUNDLE_ENTRIES
    entries = data.get("entry") if isinstance(data, dict) else None
    if isinstance(entries, list) and len(entries) > limit:
        raise ValidationError(
            {
                "entry": [
                    f"This bundle has {len(entries)} entries; the API takes at most {limit} per request "
                    "(FHIR_MAX_BUNDLE_ENTRIES). Split it into smaller bundles, or import the file with "
                    "manage.py import_fhir."
                ]
            }
        )


class FhirImportView(ClinicalView):
    permission_classes = [IsHematologist]
    stores_only_when_created = True
    parser_classes = [JSONParser, FhirJSONParser]

    @extend_schema(
        request={"application/fhir+json": dict, "application/json": dict},
        responses=s.FhirResultSerializer,
        parameters=[OpenApiParameter("dry_run", bool, description="Validate and report; store nothing.")],
        summary="Import a FHIR R4 Bundle of LOINC-coded Observations (hematologist): all or nothing",
    )
    def post(self, request: Request) -> Response:
        dry_run = request.query_params.get("dry_run", "").lower() in ("1", "true", "yes")
        _check_bundle_size(request.data)
        result = import_bundle(request.data, user=request.user, request=request, dry_run=dry_run)
        code = status.HTTP_201_CREATED if result.stored and not dry_run else status.HTTP_200_OK
        return Response(s.FhirResultSerializer(result).data, status=code)


class PatientFhirView(ClinicalView):
    permission_classes = [IsHematologist]  # exporting a record is for hematologists (SPEC 7)

    @extend_schema(
        responses={(200, "application/fhir+json"): dict},
        summary="Export the patient and every live lab value as a FHIR R4 Bundle (hematologist; logged)",
    )
    def get(self, request: Request, mrn: str) -> HttpResponse:
        bundle = export_patient_bundle(self.get_patient(mrn), user=request.user)
        return HttpResponse(bundle, content_type="application/fhir+json")


def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Unknown API URLs answer JSON too, not the HTML 404 page."""
    return JsonResponse(
        {"detail": f"No API endpoint at {request.path}. The endpoints are listed at /api/v1/docs/."},
        status=404,
    )
