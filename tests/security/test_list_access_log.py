"""Every read is logged: lists write one access-log line per patient returned, in one insert.

Issue 9, finding 4: the API patient list returned full records and wrote no access-log line.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crsrisk.accounts.models import AccessLog
from patients import services
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db


def _register(mrns, team, user):
    """Patients on day 3, so that the ward list shows them."""
    infused = timezone.localdate() - timedelta(days=3)
    for mrn in mrns:
        services.patient_register(
            user=user, mrn=mrn, name=f"Patient {mrn}", infusion_date=infused, care_team=team
        )


def test_api_patient_list_logs_one_line_per_patient_returned(clinician, team, other_team):
    _register(["A1", "A2", "A3"], team, clinician)
    _register(["B1"], other_team, clinician)
    response = token_client(clinician).get(reverse("api:patient-list"))
    assert [p["mrn"] for p in response.json()] == ["A1", "A2", "A3"]
    rows = AccessLog.objects.filter(page="api:patient-list")
    assert sorted(rows.values_list("mrn", flat=True)) == ["A1", "A2", "A3"]
    assert {(r.username, r.granted, r.ip_address) for r in rows} == {("clin", True, "127.0.0.1")}


def test_api_patient_list_logs_in_a_constant_number_of_queries(clinician, team):
    api = token_client(clinician)
    _register(["A1"], team, clinician)
    with CaptureQueriesContext(connection) as one:
        api.get(reverse("api:patient-list"))
    _register(["A2", "A3", "A4", "A5"], team, clinician)
    with CaptureQueriesContext(connection) as five:
        api.get(reverse("api:patient-list"))
    assert len(five.captured_queries) == len(one.captured_queries)
    assert AccessLog.objects.filter(page="api:patient-list").count() == 6


def test_ward_list_logs_one_line_per_patient_shown(client, clinician, team, other_team):
    _register(["A1", "A2"], team, clinician)
    _register(["B1"], other_team, clinician)
    client.force_login(clinician)
    assert client.get(reverse("patients:ward")).status_code == 200
    rows = AccessLog.objects.filter(page="ward list")
    assert sorted(rows.values_list("mrn", flat=True)) == ["A1", "A2"]
    client.get(reverse("patients:ward"), {"q": "A2"})
    assert sorted(AccessLog.objects.filter(page="ward list").values_list("mrn", flat=True)) == [
        "A1",
        "A2",
        "A2",
    ]


def test_an_empty_list_logs_nothing(clinician):
    assert token_client(clinician).get(reverse("api:patient-list")).json() == []
    assert not AccessLog.objects.exists()
