"""Ward pages under /patients/."""

from django.urls import path

from patients import transfer_views, upload_views, views

app_name = "patients"

urlpatterns = [
    path("", views.ward, name="ward"),
    path("register/", views.register, name="register"),
    # Two segments, so that no MRN is shadowed by these pages.
    path("files/import/", transfer_views.import_upload, name="import"),
    path("files/import/preview/", transfer_views.import_preview, name="import-preview"),
    path("files/import/confirm/", transfer_views.import_confirm, name="import-confirm"),
    path("files/import/<int:transfer>/", transfer_views.import_result, name="import-result"),
    path("files/import/large/", upload_views.upload, name="upload"),
    path("files/import/large/<int:pk>/", upload_views.preview, name="upload-preview"),
    path("files/import/large/<int:pk>/confirm/", upload_views.confirm, name="upload-confirm"),
    path("files/import/job/<int:job>/", upload_views.import_job, name="upload-job"),
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
