"""The API refuses bad bodies in JSON, never a 500 or an HTML page (issue 9, finding 5).

JSON nested too deeply answers 400, a body over the size limit 413, and a FHIR bundle of
more entries than FHIR_MAX_BUNDLE_ENTRIES is refused with a message: larger feeds go
through ``manage.py import_fhir``.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from patients.models import LabResult, Patient
from tests.api.test_fhir import bundle, observation

pytestmark = pytest.mark.django_db
PATIENTS = reverse("api:patient-list")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _json(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_json_nested_a_thousand_deep_is_400(clin_api, depth):
    response = clin_api.post(PATIENTS, nested(depth), content_type="application/json")
    assert response.status_code == 400
    assert "nested" in _json(response)["detail"]
    assert not Patient.objects.exists()


def test_json_nested_beyond_the_limit_is_400_and_says_the_limit(clin_api, settings):
    settings.API_MAX_JSON_DEPTH = 20
    body = json.dumps({"mrn": "N1", "name": {"a": json.loads(nested(25))}})
    response = clin_api.post(PATIENTS, body, content_type="application/json")
    assert response.status_code == 400
    assert "20" in _json(response)["detail"]
    ok = json.dumps({"mrn": "N1", "name": "Ann", "infusion_date": "2025-03-01", "x": json.loads(nested(15))})
    assert clin_api.post(PATIENTS, ok, content_type="application/json").status_code == 201


@override_settings(DEBUG=True)
def test_deep_nesting_under_debug_shows_no_traceback(clinician):
    from tests.api.conftest import token_client

    api = token_client(clinician)
    api.raise_request_exception = False
    response = api.post(PATIENTS, nested(5000), content_type="application/json")
    assert response.status_code == 400
    assert "Traceback" not in response.content.decode()
    _json(response)


def test_a_body_over_the_size_limit_is_413_in_json(clin_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps({"mrn": "N1", "name": "x" * 4000, "infusion_date": "2025-03-01"})
    response = clin_api.post(PATIENTS, body, content_type="application/json")
    assert response.status_code == 413
    detail = _json(response)["detail"]
    assert "2048" in detail or "2 KB" in detail or "2.0 KB" in detail
    assert not Patient.objects.exists()


def test_a_fhir_body_over_the_size_limit_is_413_in_json(hema_api, settings, patient):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps(bundle(*[observation(when=f"2025-03-0{d}T08:00:00+00:00") for d in range(2, 9)]))
    assert len(body) > 2048
    response = hema_api.post(reverse("api:fhir"), body, content_type="application/fhir+json")
    assert response.status_code == 413
    _json(response)
    assert not LabResult.objects.exists()


def test_a_fhir_bundle_over_the_entry_limit_is_refused_with_a_message(hema_api, settings, patient):
    settings.FHIR_MAX_BUNDLE_ENTRIES = 3
    body = bundle(*[observation(when=f"2025-03-0{d}T08:00:00+00:00") for d in range(2, 6)])
    response = hema_api.post(reverse("api:fhir"), body)
    assert response.status_code == 400
    message = " ".join(_json(response)["errors"]["entry"])
    assert "4 entries" in message and "at most 3" in message and "import_fhir" in message
    assert not LabResult.objects.exists()
    body["entry"] = body["entry"][:3]
    assert hema_api.post(reverse("api:fhir"), body).status_code == 201


def test_the_entry_limit_defaults_to_1000(settings):
    assert settings.FHIR_MAX_BUNDLE_ENTRIES == 1000


def test_an_anonymous_deep_body_is_still_401_not_a_parse(client):
    response = APIClient().post(PATIENTS, nested(5000), content_type="application/json")
    assert response.status_code == 401


def test_the_fhir_command_refuses_deep_json_with_a_message(tmp_path):
    from django.core.management import CommandError, call_command

    path = tmp_path / "deep.json"
    path.write_text(nested(100_000), encoding="utf-8")
    with pytest.raises(CommandError, match="not JSON"):
        call_command("import_fhir", str(path))
