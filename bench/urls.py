"""The bench's URLs: the application's own, plus the bare comparison views (never in production)."""

from __future__ import annotations

from django.urls import include, path

from bench import views

urlpatterns = [
    path("bench/bare/<str:mrn>/labs/", views.bare_lab_panel, name="bench-bare-labs"),
    path("bench/bare/ward/", views.bare_ward, name="bench-bare-ward"),
    path("", include("crsrisk.urls")),
]
