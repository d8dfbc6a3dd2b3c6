"""Roles and care teams on the API are those of the web pages (SPEC 7, 8.4)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from crsrisk.accounts.models import AccessLog

pytestmark = pytest.mark.django_db

PATIENT_ROUTES = [
    "api:patient-detail",
    "api:lab-list",
    "api:observation-list",
    "api:event-list",
    "api:override-list",
    "api:assessment-list",
    "api:summary",
]


@pytest.mark.parametrize("route", PATIENT_ROUTES)
def test_patient_of_another_team_is_404_and_logged_as_refused(outsider_api, patient, route):
    response = outsider_api.get(reverse(route, kwargs={"mrn": patient.mrn}))
    assert response.status_code == 404
    assert response.json()["detail"] == "No patient with MRN P001 in your care teams."
    log = AccessLog.objects.get()
    assert (log.username, log.mrn, log.page, log.granted) == ("other-clin", "P001", route, False)


def test_unknown_mrn_answers_exactly_like_another_teams_patient(outsider_api, patient):
    unknown = outsider_api.get(reverse("api:patient-detail", kwargs={"mrn": "NOPE"})).json()
    hidden = outsider_api.get(reverse("api:patient-detail", kwargs={"mrn": "P001"})).json()
    assert unknown["detail"].replace("NOPE", "X") == hidden["detail"].replace("P001", "X")


@pytest.mark.parametrize("route", PATIENT_ROUTES)
def test_every_get_of_a_record_writes_a_granted_access_log_line(clin_api, patient, route):
    response = clin_api.get(reverse(route, kwargs={"mrn": patient.mrn}))
    assert response.status_code == 200, response.content
    log = AccessLog.objects.get()
    assert (log.username, log.mrn, log.page, log.granted) == ("clin", "P001", route, True)


def test_patient_list_shows_only_ones_care_teams(clin_api, outsider_api, patient, other_patient):
    assert [p["mrn"] for p in clin_api.get(reverse("api:patient-list")).json()] == ["P001"]
    assert [p["mrn"] for p in outsider_api.get(reverse("api:patient-list")).json()] == ["Q900"]


@pytest.mark.parametrize(
    ("method", "route", "kwargs"),
    [
        ("get", "api:patient-list", {}),
        ("post", "api:patient-list", {}),
        ("get", "api:patient-detail", {"mrn": "P001"}),
        ("get", "api:lab-list", {"mrn": "P001"}),
        ("post", "api:lab-list", {"mrn": "P001"}),
        ("get", "api:assessment-list", {"mrn": "P001"}),
        ("get", "api:summary", {"mrn": "P001"}),
        ("post", "api:event-list", {"mrn": "P001"}),
        ("post", "api:fhir", {}),
    ],
)
def test_admins_get_403_on_every_clinical_endpoint(admin_api, patient, method, route, kwargs):
    response = getattr(admin_api, method)(reverse(route, kwargs=kwargs), {}, format="json")
    assert response.status_code == 403
    assert "detail" in response.json()
    assert not AccessLog.objects.filter(granted=True).exists()


def test_anonymous_gets_401_with_token_challenge(patient):
    response = APIClient().get(reverse("api:patient-detail", kwargs={"mrn": "P001"}))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert not AccessLog.objects.exists()


def test_bad_token_is_401(patient):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get(reverse("api:patient-list")).status_code == 401


def test_session_login_works_too(client, clinician, patient):
    client.force_login(clinician)
    response = client.get(reverse("api:patient-detail", kwargs={"mrn": "P001"}))
    assert response.status_code == 200
    assert response.json()["mrn"] == "P001"


def test_session_writes_need_the_csrf_token(clinician, patient):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(clinician)
    response = client.post(
        reverse("api:lab-list", kwargs={"mrn": "P001"}),
        {"analyte": "crp", "value": 10, "collected_at": "2025-03-02T08:00:00Z"},
        format="json",
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.parametrize(
    ("route", "kwargs"),
    [("api:event-list", {"mrn": "P001"}), ("api:override-list", {"mrn": "P001"}), ("api:fhir", {})],
)
def test_clinicians_may_not_record_events_overrides_or_fhir(clin_api, patient, route, kwargs):
    response = clin_api.post(reverse(route, kwargs=kwargs), {}, format="json")
    assert response.status_code == 403
    assert "hematologist" in response.json()["detail"]


def test_unknown_api_url_is_a_json_404(clin_api):
    response = clin_api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert "/api/v1/docs/" in response.json()["detail"]


def test_wrong_method_is_a_json_405(clin_api, patient):
    response = clin_api.delete(reverse("api:patient-detail", kwargs={"mrn": "P001"}))
    assert response.status_code == 405
    assert "DELETE" in response.json()["detail"]
