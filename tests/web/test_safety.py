"""Escaping, error pages, assets served locally, charts without inline script (SPEC 8.1, 9)."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.staticfiles.finders import find
from django.test import Client
from django.urls import reverse

from patients import services
from tests.web.conftest import at, register

pytestmark = pytest.mark.django_db
XSS = '<script>alert("x")</script>'


def test_a_patient_named_script_is_shown_as_text(clin_client, clinician, team):
    p = register(clinician, team, "XSS1", name=XSS)
    services.lab_record(user=clinician, patient=p, analyte="crp", value="10", collected_at=at(p, 1), note=XSS)
    for url in (
        reverse("patients:ward"),
        reverse("patients:detail", args=[p.mrn]),
        reverse("patients:history", args=[p.mrn]),
        reverse("patients:lab-entry", args=[p.mrn]),
    ):
        html = clin_client.get(url).content.decode()
        assert XSS not in html, url
        assert "&lt;script&gt;" in html, url


def test_search_text_is_escaped(clin_client):
    html = clin_client.get(reverse("patients:ward"), {"q": XSS}).content.decode()
    assert XSS not in html
    assert "&lt;script&gt;" in html


def test_patient_page_has_no_inline_script_and_chart_json_is_embedded(clin_client, clinician, team):
    p = register(clinician, team, "CH1", day=10, baseline_mrd_pct=12)
    services.lab_record(user=clinician, patient=p, analyte="crp", value="210", collected_at=at(p, 7))
    services.lab_record(user=clinician, patient=p, analyte="bcell", value="<1", collected_at=at(p, 7))
    services.observation_record(
        user=clinician, patient=p, date=p.infusion.infusion_date, tmax_c="38.5", tocilizumab=True
    )
    html = clin_client.get(reverse("patients:detail", args=[p.mrn])).content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    for attrs, body in scripts:
        if 'type="application/json"' in attrs:
            json.loads(body)
        else:
            assert "src=" in attrs and not body.strip(), f"inline script found: {attrs}"
    ids = re.findall(r'data-chart="([^"]+)"', html)
    assert {"chart-score-data", "chart-crs-data", "chart-bcell-data", "chart-lab-crp-data"} <= set(ids)
    assert "/static/vendor/plotly.min.js" in html
    assert "/static/js/charts.js" in html
    assert "http://" not in html.replace("http://testserver", "") and "https://" not in html


def test_plotly_is_served_locally_from_the_installed_package(clin_client):
    assert find("vendor/plotly.min.js")
    response = clin_client.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"plotly" in body[:2000].lower()
    assert len(body) > 1_000_000
    charts = clin_client.get("/static/js/charts.js")
    assert charts.status_code == 200


def test_custom_error_pages_show_no_stack_trace(clin_client):
    from django.test import override_settings

    with override_settings(DEBUG=False):
        response = clin_client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"Not found" in response.content and b"Traceback" not in response.content


def test_500_page_renders_without_context():
    from crsrisk.views import server_error

    response = server_error(None)  # type: ignore[arg-type]
    assert response.status_code == 500
    assert b"Server error" in response.content


def test_500_under_the_api_is_json_without_a_trace():
    import json

    from django.test import RequestFactory

    from crsrisk.views import server_error

    response = server_error(RequestFactory().get("/api/v1/patients/"))
    assert response.status_code == 500
    body = json.loads(response.content)
    assert "nothing was stored" in body["detail"]
    assert "Traceback" not in body["detail"]


def test_csrf_is_enforced_on_forms(clinician, ward_patient):
    c = Client(enforce_csrf_checks=True)
    c.force_login(clinician)
    response = c.post(reverse("patients:lab-entry", args=[ward_patient.mrn]), {"crp_value": "1"})
    assert response.status_code == 403
