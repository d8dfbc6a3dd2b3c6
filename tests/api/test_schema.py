"""OpenAPI 3 schema and interactive docs, served by the application without a CDN (SPEC 8.1, 8.4)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
URL_ATTR = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def test_schema_is_valid_openapi_3_with_every_route(clin_api):
    response = clin_api.get(reverse("api:schema"), {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)
    paths = set(schema["paths"])
    for path in (
        "/api/v1/patients/",
        "/api/v1/patients/{mrn}/",
        "/api/v1/patients/{mrn}/labs/",
        "/api/v1/patients/{mrn}/labs/{id}/void/",
        "/api/v1/patients/{mrn}/observations/{day}/",
        "/api/v1/patients/{mrn}/events/",
        "/api/v1/patients/{mrn}/assessments/",
        "/api/v1/patients/{mrn}/summary/",
        "/api/v1/fhir/",
        "/api/v1/patients/{mrn}/fhir/",
    ):
        assert path in paths
    for path, method in (
        ("/api/v1/patients/", "post"),
        ("/api/v1/fhir/", "post"),
        ("/api/v1/patients/{mrn}/", "patch"),
    ):
        headers = [p["name"] for p in schema["paths"][path][method]["parameters"] if p["in"] == "header"]
        assert headers == ["Idempotency-Key"], (path, method)
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    lab_body = schema["paths"]["/api/v1/patients/{mrn}/labs/"]["post"]["requestBody"]
    assert lab_body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LabCreate"}


def test_schema_needs_login():
    assert APIClient().get(reverse("api:schema")).status_code == 401


def test_docs_reference_only_local_static_files(client, clinician):
    client.force_login(clinician)
    response = client.get(reverse("api:docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>" not in html  # the init script is a separate file, so CSP needs no inline script
    urls = URL_ATTR.findall(html)
    assert urls, "no asset found in the docs page"
    for url in urls:
        assert url.startswith("/"), f"off-origin URL {url}"
        assert not url.startswith("//"), f"protocol-relative URL {url}"
    statics = [u for u in urls if u.startswith("/static/")]
    assert len(statics) >= 3
    for url in statics:
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a local static file"
    (script,) = [u for u in urls if "script" in u and not u.startswith("/static/")]
    init = client.get(script)
    assert init.status_code == 200
    assert init["Content-Type"].startswith("application/javascript")
    assert "/api/v1/schema/" in init.content.decode()
    assert not re.search(r"https?://", init.content.decode())


def test_docs_redirect_anonymous_users_to_login(client):
    response = client.get(reverse("api:docs"))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
