"""Score model and site parameter pages under /scoring/ (hematologists)."""

from django.urls import path

from scoring import views

app_name = "scoring"

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("fit/", views.model_fit, name="model-fit"),
    path("models/<str:name>/", views.model_detail, name="model-detail"),
    path("models/<str:name>/report/", views.model_report, name="model-report"),
    path("models/<str:name>/activate/", views.model_activate, name="model-activate"),
    path("models/<str:name>/new/", views.model_new, name="model-new"),
    path("models/<str:name>/edit/", views.model_edit, name="model-edit"),
    path("models/<str:name>/retire/", views.model_retire, name="model-retire"),
    path("site-parameters/", views.site_parameters, name="site-parameters"),
    path("cohort/", views.cohort, name="cohort"),
]
