"""URLs of the JSON API, namespace ``api`` (SPEC 8.4)."""

from __future__ import annotations

from datetime import date

from django.contrib.auth.decorators import login_required
from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated

from patients.api import views


class IsoDateConverter:
    """A calendar date in the path, ``2025-03-08``; an impossible date does not match."""

    regex = r"\d{4}-\d{2}-\d{2}"

    def to_python(self, value: str) -> date:
        return date.fromisoformat(value)

    def to_url(self, value: date | str) -> str:
        return value.isoformat() if isinstance(value, date) else value


register_converter(IsoDateConverter, "isodate")

app_name = "api"

P = "patients/<str:mrn>/"
AUTH = views.ClinicalView.authentication_classes

urlpatterns = [
    path("patients/", views.PatientListView.as_view(), name="patient-list"),
    path(P, views.PatientDetailView.as_view(), name="patient-detail"),
    path(P + "labs/", views.LabListView.as_view(), name="lab-list"),
    path(P + "labs/<int:pk>/", views.LabDetailView.as_view(), name="lab-detail"),
    path(P + "labs/<int:pk>/void/", views.LabVoidView.as_view(), name="lab-void"),
    path(P + "observations/", views.ObservationListView.as_view(), name="observation-list"),
    path(P + "observations/<isodate:day>/", views.ObservationDetailView.as_view(), name="observation-detail"),
    path(
        P + "observations/<isodate:day>/void/", views.ObservationVoidView.as_view(), name="observation-void"
    ),
    path(P + "events/", views.EventListView.as_view(), name="event-list"),
    path(P + "events/<int:pk>/void/", views.EventVoidView.as_view(), name="event-void"),
    path(P + "overrides/", views.OverrideListView.as_view(), name="override-list"),
    path(P + "overrides/<int:pk>/void/", views.OverrideVoidView.as_view(), name="override-void"),
    path(P + "assessments/", views.AssessmentListView.as_view(), name="assessment-list"),
    path(P + "summary/", views.SummaryView.as_view(), name="summary"),
    path(P + "fhir/", views.PatientFhirView.as_view(), name="patient-fhir"),
    path("fhir/", views.FhirImportView.as_view(), name="fhir"),
    # Login is required everywhere but the login page and the health check (SPEC 7).
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=AUTH, permission_classes=[IsAuthenticated]),
        name="schema",
    ),
    path(
        "docs/",
        login_required(
            SpectacularSwaggerSplitView.as_view(
                url_name="api:schema", authentication_classes=AUTH, permission_classes=[IsAuthenticated]
            )
        ),
        name="docs",
    ),
    re_path(r"^(?P<path>.*)$", views.not_found),
]
