"""Ward pages under /patients/."""

from django.urls import path

from patients import transfer_views, views

app_name = "patients"

urlpatterns = [
    path("", views.ward, name="ward"),
    path("register/", views.register, name="register"),
    # Two segments, so that no MRN is shadowed by these pages.
    # Every web import: upload, check and preview, confirmation, job, result (patients/uploads.py).
    path("files/import/", transfer_views.import_upload, name="import"),
    path("files/import/upload/<int:pk>/", transfer_views.import_preview, name="import-upload"),
    path(
        "files/import/upload/<int:pk>/confirm/", transfer_views.import_confirm, name="import-upload-confirm"
    ),
    path("files/import/job/<int:job>/", transfer_views.import_job, name="import-job"),
    path("files/import/<int:transfer>/", transfer_views.import_result, name="import-result"),
    # The earlier addresses (the session preview, the separate large import) lead there.
    path("files/import/preview/", transfer_views.legacy_import_preview, name="import-preview"),
    path("files/import/confirm/", transfer_views.legacy_redirect, name="import-confirm"),
    path("files/import/large/", transfer_views.legacy_redirect, name="upload"),
    path("files/import/large/<int:pk>/", transfer_views.legacy_redirect, name="upload-preview"),
    path("files/import/large/<int:pk>/confirm/", transfer_views.legacy_redirect, name="upload-confirm"),
    path("files/export/", transfer_views.export, name="export"),
    path("<str:mrn>/", views.detail, name="detail"),
    path("<str:mrn>/edit/", views.edit, name="edit"),
    path("<str:mrn>/history/", views.history, name="history"),
    path("<str:mrn>/labs/new/", views.lab_entry, name="lab-entry"),
    path("<str:mrn>/labs/<int:pk>/correct/", views.lab_correct, name="lab-correct"),
    path("<str:mrn>/labs/<int:pk>/void/", views.lab_void, name="lab-void"),
    path("<str:mrn>/observations/new/", views.observation_entry, name="observation-entry"),
    path("<str:mrn>/observations/<int:pk>/void/", views.observation_void, name="observation-void"),
    path("<str:mrn>/events/new/", views.event_entry, name="event-entry"),
    path("<str:mrn>/events/<int:pk>/void/", views.event_void, name="event-void"),
    path("<str:mrn>/override/", views.override, name="override"),
    path("<str:mrn>/override/<int:pk>/void/", views.override_void, name="override-void"),
    path("<str:mrn>/alerts/<int:pk>/acknowledge/", views.alert_ack, name="alert-ack"),
]
