"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

from crsrisk import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("accounts/", include("crsrisk.accounts.urls")),
    path("admin/", admin.site.urls),
]
