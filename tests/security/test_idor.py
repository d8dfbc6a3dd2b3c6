"""Another team's patient answers 404 and the attempt is logged, by URL and by API (SPEC 7)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from crsrisk.accounts.models import AccessLog
from patients.models import LabResult, Patient


@pytest.mark.parametrize(
    "name", ["patients:detail", "patients:history", "patients:edit", "patients:lab-entry"]
)
def test_other_teams_patient_by_url_is_404_and_logged(
    client: Client, other_clinician: User, patient: Patient, name: str
) -> None:
    client.force_login(other_clinician)
    response = client.get(reverse(name, args=[patient.mrn]))
    assert response.status_code == 404
    assert patient.name not in response.content.decode()
    denied = AccessLog.objects.get(granted=False)
    assert denied.username == "clin9" and denied.mrn == patient.mrn


def test_other_teams_lab_by_url_is_404(client: Client, other_clinician: User, lab: LabResult) -> None:
    client.force_login(other_clinician)
    response = client.post(
        reverse("patients:lab-void", args=[lab.patient.mrn, lab.pk]), {"reason": "x", "version": lab.version}
    )
    assert response.status_code == 404
    lab.refresh_from_db()
    assert not lab.is_voided


def test_unknown_mrn_looks_the_same_as_a_hidden_one(
    client: Client, other_clinician: User, patient: Patient
) -> None:
    client.force_login(other_clinician)
    hidden = client.get(reverse("patients:detail", args=[patient.mrn]))
    missing = client.get(reverse("patients:detail", args=["NOPE"]))
    assert hidden.status_code == missing.status_code == 404
    assert AccessLog.objects.filter(granted=False).count() == 2


def test_own_teams_patient_view_is_logged(client: Client, clinician: User, patient: Patient) -> None:
    client.force_login(clinician)
    assert client.get(reverse("patients:detail", args=[patient.mrn])).status_code == 200
    assert AccessLog.objects.filter(granted=True, username="clin", mrn=patient.mrn).exists()


@pytest.mark.parametrize("suffix", ["", "labs/", "observations/", "assessments/", "summary/"])
def test_other_teams_patient_by_api_is_404_and_logged(
    client: Client, other_clinician: User, patient: Patient, suffix: str
) -> None:
    client.force_login(other_clinician)
    response = client.get(f"/api/v1/patients/{patient.mrn}/{suffix}")
    assert response.status_code == 404
    assert patient.name not in response.content.decode()
    assert response.headers.get("Content-Type", "").startswith("application/json")
    assert AccessLog.objects.filter(granted=False, mrn=patient.mrn, username="clin9").exists()


def test_api_token_of_other_team_cannot_read_the_patient(
    client: Client, other_clinician: User, patient: Patient
) -> None:
    from crsrisk.accounts.services import token_issue

    key = token_issue(actor=None, user=other_clinician)
    response = client.get(f"/api/v1/patients/{patient.mrn}/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 404


def test_admin_gets_no_patient_data_by_url_or_api(client: Client, site_admin: User, patient: Patient) -> None:
    client.force_login(site_admin)
    assert client.get(reverse("patients:detail", args=[patient.mrn])).status_code == 403
    assert client.get(reverse("patients:ward")).status_code == 403
    api = client.get(f"/api/v1/patients/{patient.mrn}/")
    assert api.status_code in (403, 404)
    assert patient.name not in api.content.decode()
