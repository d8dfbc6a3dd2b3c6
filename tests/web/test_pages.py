"""Every page renders for the right role; others get 404 (other teams) or 403 (wrong role)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crsrisk.accounts.models import AccessLog
from patients import services
from scoring.models import Alert
from tests.web.conftest import at

pytestmark = pytest.mark.django_db


def patient_urls(mrn: str, lab_pk: int, obs_pk: int) -> dict[str, str]:
    return {
        "detail": reverse("patients:detail", args=[mrn]),
        "edit": reverse("patients:edit", args=[mrn]),
        "history": reverse("patients:history", args=[mrn]),
        "lab-entry": reverse("patients:lab-entry", args=[mrn]),
        "lab-correct": reverse("patients:lab-correct", args=[mrn, lab_pk]),
        "lab-void": reverse("patients:lab-void", args=[mrn, lab_pk]),
        "observation-entry": reverse("patients:observation-entry", args=[mrn]),
        "observation-void": reverse("patients:observation-void", args=[mrn, obs_pk]),
    }


HEMA_ONLY = ("event-entry", "override")


@pytest.fixture
def filled(clinician, ward_patient):
    lab = services.lab_record(
        user=clinician, patient=ward_patient, analyte="crp", value="50", collected_at=at(ward_patient, 2)
    )
    obs = services.observation_record(
        user=clinician, patient=ward_patient, date=ward_patient.infusion.infusion_date, tmax_c="38.5"
    )
    return ward_patient, lab, obs


def test_every_clinical_page_renders_for_a_clinician(clin_client, filled):
    patient, lab, obs = filled
    for name, url in patient_urls(patient.mrn, lab.pk, obs.pk).items():
        response = clin_client.get(url)
        assert response.status_code == 200, name
    assert clin_client.get(reverse("patients:ward")).status_code == 200
    assert clin_client.get(reverse("patients:register")).status_code == 200
    assert clin_client.get(reverse("about")).status_code == 200


def test_clinician_gets_403_on_hematologist_pages(clin_client, filled):
    patient, _lab, _obs = filled
    for name in HEMA_ONLY:
        assert clin_client.get(reverse(f"patients:{name}", args=[patient.mrn])).status_code == 403
    assert clin_client.get(reverse("scoring:model-list")).status_code == 403
    assert clin_client.get(reverse("scoring:site-parameters")).status_code == 403
    response = clin_client.get(reverse("scoring:model-detail", args=["provisional-v0"]))
    assert response.status_code == 403
    assert b"Traceback" not in response.content


def test_hematologist_sees_every_page(hema_client, filled):
    patient, lab, obs = filled
    for name, url in patient_urls(patient.mrn, lab.pk, obs.pk).items():
        assert hema_client.get(url).status_code == 200, name
    for name in HEMA_ONLY:
        assert hema_client.get(reverse(f"patients:{name}", args=[patient.mrn])).status_code == 200
    assert hema_client.get(reverse("scoring:model-list")).status_code == 200
    assert hema_client.get(reverse("scoring:model-detail", args=["provisional-v0"])).status_code == 200
    assert hema_client.get(reverse("scoring:site-parameters")).status_code == 200


def test_other_care_team_gets_404_and_the_denial_is_logged(outsider_client, filled):
    patient, lab, obs = filled
    for name, url in patient_urls(patient.mrn, lab.pk, obs.pk).items():
        response = outsider_client.get(url)
        assert response.status_code == 404, name
        assert b"Traceback" not in response.content
    assert AccessLog.objects.filter(mrn=patient.mrn, granted=False, username="outsider").exists()
    assert patient.mrn.encode() not in outsider_client.get(reverse("patients:ward")).content


def test_admin_sees_no_clinical_page(site_admin_client, filled):
    patient, lab, obs = filled
    assert site_admin_client.get(reverse("patients:ward")).status_code == 403
    for url in patient_urls(patient.mrn, lab.pk, obs.pk).values():
        assert site_admin_client.get(url).status_code == 403


def test_anonymous_is_sent_to_login(client, filled):
    patient, _lab, _obs = filled
    for url in (reverse("patients:ward"), reverse("patients:detail", args=[patient.mrn])):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("accounts:login") in response["Location"]


def test_home_sends_clinical_users_to_the_ward_and_admins_to_account_admin(clin_client, site_admin_client):
    assert clin_client.get(reverse("home"))["Location"] == reverse("patients:ward")
    location = site_admin_client.get(reverse("home"))["Location"]
    assert location.startswith("/accounts/") or location.startswith("/admin/")


def test_a_wrong_lab_id_of_another_patient_is_404(clin_client, clinician, team, filled):
    from tests.web.conftest import register

    _patient, lab, _obs = filled
    other = register(clinician, team, "W002")
    assert clin_client.get(reverse("patients:lab-correct", args=[other.mrn, lab.pk])).status_code == 404


def test_unknown_url_shows_the_custom_404(clin_client):
    response = clin_client.get("/patients/NOPE/")
    assert response.status_code == 404
    assert b"Not found" in response.content


def test_alert_ack_is_hematologist_only(clin_client, hema_client, clinician, ward_patient):
    services.observation_record(
        user=clinician,
        patient=ward_patient,
        date=ward_patient.infusion.infusion_date,
        tmax_c="39.0",
        hypotension="one_vasopressor",
    )
    alert = Alert.objects.get(patient=ward_patient, kind="severe_crs")
    url = reverse("patients:alert-ack", args=[ward_patient.mrn, alert.pk])
    assert clin_client.post(url, {"note": "seen"}).status_code == 403
    alert.refresh_from_db()
    assert alert.acknowledged_at is None
    response = hema_client.post(url, {"note": "Seen; ICU informed."})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None
    assert alert.acknowledgement_note == "Seen; ICU informed."
