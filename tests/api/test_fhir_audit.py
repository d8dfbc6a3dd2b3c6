"""Every FHIR import and export is written to the audit trail as a DataTransfer (SPEC 8.4, 8.2:
"Every import and every export is written to the audit trail"), refused and dry-run imports too."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from patients.models import DataTransfer, LabResult
from tests.api.test_fhir import FHIR, bundle, day7_bundle, observation

pytestmark = pytest.mark.django_db


def test_an_accepted_bundle_is_recorded_with_its_counts_and_its_user(hema_api, patient, hematologist):
    assert hema_api.post(FHIR, day7_bundle()).status_code == 201
    record = DataTransfer.objects.get()
    assert (record.direction, record.kind, record.accepted, record.dry_run) == ("import", "fhir", True, False)
    assert (record.rows_created, record.rows_skipped, record.patients) == (5, 0, 1)
    assert record.user == hematologist and record.username == hematologist.username
    assert hema_api.post(FHIR, day7_bundle()).status_code == 200  # the same bundle again: all skipped
    again = DataTransfer.objects.order_by("-id").first()
    assert (again.rows_created, again.rows_skipped, again.accepted) == (0, 5, True)


def test_a_refused_bundle_is_recorded_as_refused_and_stores_nothing(hema_api, patient):
    bad = bundle(observation(value="12,5"), observation("2276-4", 900, "furlongs"), observation())
    assert hema_api.post(FHIR, bad).status_code == 400
    assert not LabResult.objects.exists()
    record = DataTransfer.objects.get()
    assert (record.kind, record.accepted, record.rows_created, record.rows_refused) == ("fhir", False, 0, 2)


def test_a_refused_bundle_sent_with_an_idempotency_key_is_recorded_too(hema_api, patient):
    bad = bundle(observation(value="12,5"))
    assert hema_api.post(FHIR, bad, HTTP_IDEMPOTENCY_KEY="k-1").status_code == 400
    assert DataTransfer.objects.get().accepted is False


def test_a_dry_run_is_recorded_as_a_dry_run(hema_api, patient):
    assert hema_api.post(FHIR + "?dry_run=1", day7_bundle()).status_code == 200
    assert not LabResult.objects.exists()
    record = DataTransfer.objects.get()
    assert (record.dry_run, record.accepted, record.rows_created) == (True, True, 5)


def test_the_command_records_its_file_name(tmp_path, patient, hematologist):
    path = tmp_path / "day7.json"
    path.write_text(json.dumps(day7_bundle()))
    call_command("import_fhir", str(path), "--user", hematologist.username)
    assert DataTransfer.objects.get().filename == "day7.json"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bundle(observation(value="x"))))
    with pytest.raises(CommandError):
        call_command("import_fhir", str(bad), "--user", hematologist.username)
    assert DataTransfer.objects.order_by("-id").values_list("filename", "accepted").first() == (
        "bad.json",
        False,
    )


def test_a_patient_export_is_recorded(hema_api, patient, hematologist):
    assert hema_api.get(reverse("api:patient-fhir", kwargs={"mrn": "P001"})).status_code == 200
    record = DataTransfer.objects.get()
    assert (record.direction, record.kind, record.patients, record.user) == (
        "export",
        "fhir",
        1,
        hematologist,
    )
