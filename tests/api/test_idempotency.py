"""``Idempotency-Key`` on every API write: a retry stores nothing twice (SPEC 9, issue 12)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from patients.models import ClinicalEvent, GradeOverride, IdempotencyKey, LabResult, Observation, Patient
from tests.api.conftest import at, token_client
from tests.api.test_fhir import FHIR, day7_bundle
from tests.conftest import make_user
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
PATIENTS = reverse("api:patient-list")
LABS = reverse("api:lab-list", kwargs={"mrn": "P001"})


def post(client, url, body, key, **extra):
    return client.post(url, body, HTTP_IDEMPOTENCY_KEY=key, **extra)


def new_patient(mrn="P002"):
    return {"mrn": mrn, "name": "A. Patient", "infusion_date": "2025-03-01", "baseline_mrd_pct": "12"}


def test_retry_with_the_same_key_and_body_returns_the_first_answer_and_stores_nothing(clin_api, patient):
    first = post(clin_api, PATIENTS, new_patient(), "k-1")
    assert first.status_code == 201, first.json()
    retry = post(clin_api, PATIENTS, new_patient(), "k-1")
    assert (retry.status_code, retry.content) == (201, first.content)
    assert retry["Content-Type"] == first["Content-Type"] == "application/json"
    assert retry["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Patient.objects.filter(mrn="P002").count() == 1
    # The same JSON with its keys in another order is the same request.
    reordered = dict(reversed(list(new_patient().items())))
    assert post(clin_api, PATIENTS, reordered, "k-1").content == first.content
    # Without a key the same body is simply refused as a duplicate MRN, as before.
    assert clin_api.post(PATIENTS, new_patient()).status_code == 400


def test_same_key_with_another_body_or_path_is_409_and_stores_nothing(clin_api, patient):
    assert post(clin_api, PATIENTS, new_patient(), "k-2").status_code == 201
    other = post(clin_api, PATIENTS, new_patient("P003"), "k-2")
    assert other.status_code == 409
    assert "k-2" in other.json()["errors"]["Idempotency-Key"][0]
    lab = {"analyte": "crp", "value": "25", "collected_at": at(7)}
    assert post(clin_api, LABS, lab, "k-2").status_code == 409
    assert not Patient.objects.filter(mrn="P003").exists()
    assert not LabResult.objects.exists()


def test_a_refused_request_can_be_resent_with_the_same_key_once_fixed(clin_api, patient):
    bad = post(clin_api, LABS, {"analyte": "crp", "value": "12,5", "collected_at": at(7)}, "k-3")
    assert bad.status_code == 400
    unusual = {"analyte": "crp", "value": "900", "collected_at": at(7)}
    assert post(clin_api, LABS, unusual, "k-3").status_code == 422
    assert not IdempotencyKey.objects.exists()
    ok = post(clin_api, LABS, {**unusual, "confirm": True}, "k-3")
    assert ok.status_code == 201, ok.json()
    assert post(clin_api, LABS, {**unusual, "confirm": True}, "k-3").content == ok.content
    assert LabResult.objects.count() == 1
    assert_stored_equals_scratch(patient)


def test_keys_are_per_user(clin_api, hema_api, patient):
    assert post(clin_api, PATIENTS, new_patient("P002"), "shared").status_code == 201
    second = post(hema_api, PATIENTS, new_patient("P003"), "shared")
    assert second.status_code == 201 and "Idempotent-Replayed" not in second
    assert Patient.objects.filter(mrn__in=["P002", "P003"]).count() == 2


@pytest.mark.parametrize(
    ("url", "body", "model"),
    [
        (
            reverse("api:observation-list", kwargs={"mrn": "P001"}),
            {"date": "2025-03-03", "tmax_c": "38.4"},
            Observation,
        ),
        (
            reverse("api:event-list", kwargs={"mrn": "P001"}),
            {"kind": "cr", "date": "2025-03-29"},
            ClinicalEvent,
        ),
        (
            reverse("api:override-list", kwargs={"mrn": "P001"}),
            {"date": "2025-03-03", "grade": 0, "reason": "documented infection"},
            GradeOverride,
        ),
    ],
)
def test_every_write_endpoint_replays_a_retry(hema_api, patient, url, body, model):
    first = post(hema_api, url, body, "k-4")
    assert first.status_code == 201, first.json()
    retry = post(hema_api, url, body, "k-4")
    assert (retry.status_code, retry.content, retry["Idempotent-Replayed"]) == (201, first.content, "true")
    assert model.objects.count() == 1
    assert_stored_equals_scratch(patient)


def test_void_put_and_patch_replay_instead_of_answering_a_stale_version(clin_api, patient):
    lab = post(clin_api, LABS, {"analyte": "crp", "value": "25", "collected_at": at(7)}, "k-5").json()
    lab_id = lab["stored"][0]["id"]
    void = reverse("api:lab-void", kwargs={"mrn": "P001", "pk": lab_id})
    body = {"version": 1, "reason": "wrong patient"}
    first = post(clin_api, void, body, "k-6")
    assert first.status_code == 200, first.json()
    assert post(clin_api, void, body, "k-6").content == first.content  # not a 409 "stale version"
    day = reverse("api:observation-detail", kwargs={"mrn": "P001", "day": "2025-03-03"})
    put = clin_api.put(day, {"tmax_c": "38.4"}, HTTP_IDEMPOTENCY_KEY="k-7")
    assert clin_api.put(day, {"tmax_c": "38.4"}, HTTP_IDEMPOTENCY_KEY="k-7").content == put.content
    detail = reverse("api:patient-detail", kwargs={"mrn": "P001"})
    change = {"name": "Renamed", "version": 1, "reason": "typo"}
    patch = clin_api.patch(detail, change, HTTP_IDEMPOTENCY_KEY="k-8")
    assert patch.status_code == 200, patch.json()
    assert clin_api.patch(detail, change, HTTP_IDEMPOTENCY_KEY="k-8").content == patch.content
    assert Patient.objects.get(mrn="P001").version == 2


def test_fhir_import_replays_and_a_dry_run_does_not_use_up_the_key(hema_api, patient):
    dry = hema_api.post(FHIR + "?dry_run=1", day7_bundle(), HTTP_IDEMPOTENCY_KEY="k-9")
    assert dry.status_code == 200 and not IdempotencyKey.objects.exists()
    first = post(hema_api, FHIR, day7_bundle(), "k-10")
    assert first.status_code == 201 and first.json()["stored"] == 5
    retry = post(hema_api, FHIR, day7_bundle(), "k-10")
    assert (retry.status_code, retry.content) == (201, first.content)  # not "skipped 5"
    assert LabResult.objects.count() == 5


def test_a_lab_repeat_that_stores_nothing_records_no_key(clin_api, patient):
    lab = {"analyte": "crp", "value": "25", "collected_at": at(7)}
    assert clin_api.post(LABS, lab).status_code == 201
    assert post(clin_api, LABS, lab, "k-11").status_code == 200  # an exact repeat: skipped
    assert not IdempotencyKey.objects.exists()


def test_a_refusal_keeps_its_access_log_line(outsider_api, patient):
    from crsrisk.accounts.models import AccessLog

    response = post(outsider_api, LABS, {"analyte": "crp", "value": "25", "collected_at": at(7)}, "k-12")
    assert response.status_code == 404
    assert AccessLog.objects.filter(mrn="P001", granted=False).count() == 1
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "ключ"])
def test_a_malformed_key_is_refused(clin_api, patient, key):
    response = post(clin_api, PATIENTS, new_patient(), key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert not Patient.objects.filter(mrn="P002").exists()


def test_keys_are_kept_a_day_and_purged_after(clin_api, patient, clinician):
    assert post(clin_api, PATIENTS, new_patient("P002"), "old").status_code == 201
    assert post(clin_api, PATIENTS, new_patient("P003"), "recent").status_code == 201
    now = timezone.now()
    IdempotencyKey.objects.filter(key="old").update(created_at=now - timedelta(hours=24, minutes=1))
    IdempotencyKey.objects.filter(key="recent").update(created_at=now - timedelta(hours=23, minutes=59))
    assert post(clin_api, PATIENTS, new_patient("P003"), "recent")["Idempotent-Replayed"] == "true"
    # The next keyed write of the user purges the expired key: it is then a new request.
    assert post(clin_api, PATIENTS, new_patient("P004"), "old").status_code == 201
    assert set(IdempotencyKey.objects.values_list("key", flat=True)) == {"old", "recent"}
    # The command purges every user's expired keys.
    other = token_client(make_user("clin-2", "clinician", (patient.care_team,)))
    assert post(other, PATIENTS, new_patient("P005"), "k").status_code == 201
    IdempotencyKey.objects.exclude(key="recent").update(created_at=now - timedelta(days=2))
    call_command("purge_idempotency_keys")
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["recent"]


def test_a_replay_checks_the_patient_again_and_is_logged(clin_api, patient, clinician, site_admin):
    """Security review f2: the stored answer holds clinical values; a replay is a read."""
    from crsrisk.accounts import services as account_services
    from crsrisk.accounts.models import AccessLog

    body = {"analyte": "crp", "value": "12", "unit": "mg/L", "collected_at": at(2)}
    assert post(clin_api, LABS, body, "k-r").status_code == 201
    before = AccessLog.objects.filter(mrn="P001", username="clin", granted=True).count()
    assert post(clin_api, LABS, body, "k-r").status_code == 201
    assert AccessLog.objects.filter(mrn="P001", username="clin", granted=True).count() == before + 1
    account_services.user_update(actor=site_admin, user=clinician, role="clinician", care_teams=[])
    gone = post(clin_api, LABS, body, "k-r")
    assert gone.status_code == 404 and "12" not in gone.content.decode()
    assert AccessLog.objects.filter(mrn="P001", username="clin", granted=False).exists()
