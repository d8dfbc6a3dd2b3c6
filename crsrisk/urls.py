"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

from crsrisk import views

urlpatterns = [
    path("", views.home, name="home"),
    path("about/", views.about, name="about"),
    path("health/", views.health, name="health"),
    path("accounts/", include("crsrisk.accounts.urls")),
    path("api/v1/", include("patients.api.urls")),
    path("patients/", include("patients.urls")),
    path("scoring/", include("scoring.urls")),
    path("jobs/", include("crsrisk.jobs.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]

handler400 = "crsrisk.views.bad_request"
handler403 = "crsrisk.views.permission_denied"
handler404 = "crsrisk.views.page_not_found"
handler500 = "crsrisk.views.server_error"
