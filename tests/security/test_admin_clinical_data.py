"""The Django admin holds no patient data, whoever is staff (issue 9, finding 2).

Clinical records are read on the app's own pages, scoped to the care teams and written
to the access log; the admin would list every team's patients with no access-log line.
"""

from __future__ import annotations

import pytest
from django.contrib import admin

from crsrisk.accounts.models import AccessLog
from tests.conftest import make_user

PATIENT_DATA = {
    "patients.patient",
    "patients.infusion",
    "patients.labresult",
    "patients.observation",
    "patients.clinicalevent",
    "patients.gradeoverride",
    "scoring.dailyassessment",
    "scoring.patientsummary",
    "scoring.alert",
}


def test_no_patient_data_model_is_registered_in_the_admin() -> None:
    registered = {m._meta.label_lower for m in admin.site._registry}
    assert not PATIENT_DATA & registered


@pytest.mark.django_db
def test_staff_hematologist_cannot_list_another_teams_patients_in_the_admin(
    client, team, other_team, patient
) -> None:
    staff = make_user("staff-hema", "hematologist", (other_team,))
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    index = client.get("/admin/").content.decode()
    assert "/admin/patients/patient/" not in index
    assert client.get("/admin/patients/patient/").status_code == 404
    assert client.get(f"/admin/patients/patient/{patient.pk}/change/").status_code == 404
    assert client.get("/admin/patients/labresult/").status_code == 404
    assert client.get("/admin/scoring/patientsummary/").status_code == 404
    assert not AccessLog.objects.filter(granted=True).exists()
