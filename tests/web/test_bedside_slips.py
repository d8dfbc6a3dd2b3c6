"""Issue 8: the slips of a bedside trial get a message or a confirmation, never a silent number.

Units (a first value in mg/dL), numbers typed as text (decimal comma, letters, exponents)
and dates (a birth date in the future, an implausible age), through the real forms.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from patients import services
from patients.models import Infusion, LabResult, Observation, Patient, SiteParameters
from tests.invariants import assert_stored_equals_scratch
from tests.web.conftest import at, panel_post
from tests.web.test_entry import day, obs_post, reg_post, snapshot
from tests.web.test_model_editor import draft  # noqa: F401  # a fixture

pytestmark = pytest.mark.django_db


def set_usual_units(user, **usual: str) -> None:
    params = SiteParameters.load()
    services.site_parameters_update(
        user=user, expected_version=params.version, reason="ward habit", usual_units=usual
    )


# --- units ---------------------------------------------------------------------------------


def test_a_first_crp_in_mg_dl_asks_for_confirmation_showing_typed_and_converted(clin_client, ward_patient):
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    data = panel_post(day(ward_patient, 2), crp=("25", "mg/dL"))
    before = snapshot(ward_patient)
    response = clin_client.post(url, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "CRP 25 mg/dL is 250 mg/L: it was given in mg/dL, not in the usual mg/L" in html
    assert 'name="confirmed" value="1"' in html
    assert 'value="25"' in html  # the input is kept
    assert snapshot(ward_patient) == before
    response = clin_client.post(url, {**data, "confirmed": "1", "confirm_digest": response.context["digest"]})
    assert response.status_code == 302
    lab = LabResult.objects.get(patient=ward_patient)
    assert (lab.value, lab.entered_value, lab.entered_unit) == (Decimal(250), "25", "mg/dL")
    assert_stored_equals_scratch(ward_patient)


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [("ferritin", "800", "ng/mL"), ("il6", "30", "ng/L"), ("anc", "1.2", "10^3/µL"), ("crp", "25", "mg/L")],
)
def test_a_unit_with_factor_one_never_asks(clin_client, ward_patient, code, value, unit):
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    response = clin_client.post(url, panel_post(day(ward_patient, 2), **{code: (value, unit)}))
    assert response.status_code == 302
    assert LabResult.objects.get(patient=ward_patient).value == Decimal(value)


def test_the_lab_form_preselects_the_usual_unit_which_then_does_not_ask(
    clin_client, hematologist, ward_patient
):
    set_usual_units(hematologist, crp="mg/dL")
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    html = clin_client.get(url).content.decode()
    select = re.search(r'<select name="crp_unit".*?</select>', html, re.S)
    assert select is not None
    assert '<option value="mg/dL" selected>' in select.group(0)
    assert 'src="/static/js/units.js"' in html and "data-converts" in html
    # mg/L is now the other unit: it asks, and shows the value as typed and converted.
    response = clin_client.post(url, panel_post(day(ward_patient, 2), crp=("250", "mg/L")))
    assert response.status_code == 200
    assert (
        "CRP 250 mg/L is 250 mg/L: it was given in mg/L, not in the usual mg/dL" in response.content.decode()
    )
    response = clin_client.post(url, panel_post(day(ward_patient, 2), crp=("25", "mg/dL")))
    assert response.status_code == 302
    assert LabResult.objects.get(patient=ward_patient).value == Decimal(250)


def test_a_correction_in_another_unit_asks_too(clin_client, clinician, ward_patient):
    lab = services.lab_record(
        user=clinician, patient=ward_patient, analyte="crp", value="20", collected_at=at(ward_patient, 1)
    )
    url = reverse("patients:lab-correct", args=[ward_patient.mrn, lab.pk])
    data = {
        "value": "25",
        "unit": "mg/dL",
        "collected_date": day(ward_patient, 1).isoformat(),
        "collected_time": "08:00",
        "version": lab.version,
        "reason": "lab re-issued",
    }
    response = clin_client.post(url, data)
    assert response.status_code == 200
    assert "CRP 25 mg/dL is 250 mg/L" in response.content.decode()
    lab.refresh_from_db()
    assert lab.value == Decimal(20)


def test_usual_units_are_audited_and_recompute_nothing(hema_client, ward_patient):
    params = SiteParameters.load()
    url = reverse("scoring:site-parameters")
    page = hema_client.get(url).content.decode()
    assert 'name="usual_unit_crp"' in page
    data = {
        "bcell_threshold": "0",
        "regeneration_window_days": "45",
        "confirm_regeneration": "on",
        "crs_outcome_window": "30",
        "default_care_team": "",
        "version": str(params.version),
        "reason": "our lab reports CRP in mg/dL",
        **{f"usual_unit_{code}": unit for code, unit in services.usual_units().items()},
        "usual_unit_crp": "mg/dL",
    }
    with CaptureQueriesContext(connection) as queries:
        response = hema_client.post(url, data)
    assert response.status_code == 302
    assert not [q for q in queries.captured_queries if "scoring_dailyassessment" in q["sql"]]
    params.refresh_from_db()
    assert params.usual_units == {"crp": "mg/dL"}
    assert services.usual_units()["crp"] == "mg/dL"
    latest = params.history.order_by("-history_date").first()
    assert latest.history_change_reason == "our lab reports CRP in mg/dL"
    assert latest.usual_units == {"crp": "mg/dL"}
    # A unit the analyte does not take is refused by name.
    response = hema_client.post(url, {**data, "version": str(params.version), "usual_unit_crp": "g/L"})
    assert response.status_code == 200
    assert 'id="id_usual_unit_crp_error"' in response.content.decode()


# --- numbers are text that the server reads -------------------------------------------------

NUMBER_SLIPS = [
    ("0,5", "has a comma: use a decimal point"),
    ("3,5", "has a comma: use a decimal point"),
    ("twelve", "is not a number"),
    ("5e-1", "has an exponent, which is not accepted here"),
    ("<5", "has a comparator"),
]


# An MRD may be given below detection, "<0.01" (issue 12): its comparator is no slip.
MRD_SLIPS = [(typed, reason) for typed, reason in NUMBER_SLIPS if reason != "has a comparator"]


@pytest.mark.parametrize(("typed", "reason"), MRD_SLIPS)
def test_registration_mrd_slips_name_the_field_keep_the_input_and_store_nothing(
    clin_client, team, typed, reason
):
    response = clin_client.post(reverse("patients:register"), reg_post(team, post_ld_mrd_pct=typed))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Post-lymphodepletion MRD (%): " in html
    assert reason in html
    assert (
        "Accepted: a number from 0 to 100 %, with a decimal point, such as 12.5, or &lt;0.01 below detection."
        in html
    )
    assert f'value="{typed}"'.replace("<", "&lt;") in html
    assert not Patient.objects.exists()


def test_registration_reads_a_decimal_point_exactly(clin_client, team):
    response = clin_client.post(reverse("patients:register"), reg_post(team, post_ld_mrd_pct="0.5"))
    assert response.status_code == 302
    assert Infusion.objects.get().post_ld_mrd_pct == Decimal("0.5")


@pytest.mark.parametrize(
    ("field", "typed", "label"),
    [
        ("tmax_c", "38,6", "Highest temperature (°C)"),
        ("tmax_c", "thirty-eight", "Highest temperature (°C)"),
        ("tmax_c", "3.86e1", "Highest temperature (°C)"),
        ("oxygen_flow", "2,5", "Oxygen flow (L/min)"),
        ("vasopressors", "one", "Vasopressors other than vasopressin"),
        ("vasopressors", "1.5", "Vasopressors other than vasopressin"),
    ],
)
def test_observation_number_slips_are_refused_by_name(clin_client, ward_patient, field, typed, label):
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    extra = {"oxygen_device": "nasal_cannula"} if field == "oxygen_flow" else {}
    response = clin_client.post(url, obs_post(day(ward_patient, 2), **{field: typed}, **extra))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{label}: " in html and "Accepted: " in html
    assert f'value="{typed}"' in html
    assert not Observation.objects.filter(patient=ward_patient).exists()


def test_observation_tmax_with_a_point_is_stored(clin_client, ward_patient):
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    response = clin_client.post(url, obs_post(day(ward_patient, 2), tmax_c="38.6"))
    assert response.status_code == 302
    assert Observation.objects.get(patient=ward_patient).tmax_c == Decimal("38.6")


def test_site_parameter_with_a_comma_is_refused_by_name(hema_client):
    params = SiteParameters.load()
    data = {
        "bcell_threshold": "0,5",
        "regeneration_window_days": "45",
        "confirm_regeneration": "on",
        "crs_outcome_window": "30",
        "default_care_team": "",
        "version": str(params.version),
        "reason": "local threshold",
    }
    response = hema_client.post(reverse("scoring:site-parameters"), data)
    assert response.status_code == 200
    assert "B-cell threshold τ (cells/µL): value &#x27;0,5&#x27; has a comma" in response.content.decode()
    assert SiteParameters.load().bcell_threshold == 0


def test_no_page_has_a_browser_number_field(clin_client, hema_client, ward_patient, draft):  # noqa: F811
    pages = [
        (clin_client, reverse("patients:register")),
        (clin_client, reverse("patients:edit", args=[ward_patient.mrn])),
        (clin_client, reverse("patients:observation-entry", args=[ward_patient.mrn])),
        (clin_client, reverse("patients:lab-entry", args=[ward_patient.mrn])),
        (hema_client, reverse("patients:edit", args=[ward_patient.mrn])),
        (hema_client, reverse("scoring:site-parameters")),
        (hema_client, reverse("scoring:model-edit", args=[draft.name])),
    ]
    for client, url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert 'type="number"' not in html, url
    html = clin_client.get(reverse("patients:register")).content.decode()
    assert re.search(r'<input type="text" name="post_ld_mrd_pct"[^>]*inputmode="decimal"', html)


# --- dates ---------------------------------------------------------------------------------


def test_a_birth_date_in_the_future_is_refused_even_with_a_planned_infusion(clin_client, team):
    today = timezone.localdate()
    data = reg_post(
        team,
        birth_date=(today + timedelta(days=10)).isoformat(),
        infusion_date=(today + timedelta(days=20)).isoformat(),
        lymphodepletion_start=(today + timedelta(days=15)).isoformat(),
    )
    response = clin_client.post(reverse("patients:register"), data)
    assert response.status_code == 200
    assert "is in the future: check the year" in response.content.decode()
    assert not Patient.objects.exists()


def test_a_birth_date_after_lymphodepletion_is_refused(clin_client, team):
    data = reg_post(
        team, birth_date="2025-02-27", lymphodepletion_start="2025-02-25", infusion_date="2025-03-01"
    )
    response = clin_client.post(reverse("patients:register"), data)
    assert response.status_code == 200
    assert "The birth date lies after the start of lymphodepletion." in response.content.decode()
    assert not Patient.objects.exists()


@pytest.mark.parametrize(
    ("birth", "expected"),
    [("1920-01-01", "105 years old at infusion"), ("2024-12-01", "under 1 year old at infusion")],
)
def test_an_implausible_age_asks_for_confirmation(clin_client, team, birth, expected):
    url = reverse("patients:register")
    data = reg_post(team, birth_date=birth)
    response = clin_client.post(url, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert expected in html and 'name="confirmed" value="1"' in html
    assert not Patient.objects.exists()
    # A confirmation for other dates does not count.
    other = {
        **data,
        "birth_date": "1919-01-01",
        "confirmed": "1",
        "confirm_digest": response.context["digest"],
    }
    assert clin_client.post(url, other).status_code == 200
    assert not Patient.objects.exists()
    response = clin_client.post(url, {**data, "confirmed": "1", "confirm_digest": response.context["digest"]})
    assert response.status_code == 302
    assert Patient.objects.get().birth_date.isoformat() == birth


def test_editing_the_birth_date_to_an_implausible_age_asks(clin_client, ward_patient):
    url = reverse("patients:edit", args=[ward_patient.mrn])
    data = {
        "name": ward_patient.name,
        "sex": "U",
        "birth_date": (ward_patient.infusion.infusion_date - timedelta(days=100)).isoformat(),
        "care_team": str(ward_patient.care_team_id),
        "diagnosis": "B-ALL",
        "product": "",
        "infusion_date": ward_patient.infusion.infusion_date.isoformat(),
        "lymphodepletion_start": "",
        "baseline_mrd_pct": "",
        "post_ld_mrd_pct": "",
        "version": str(ward_patient.version),
        "reason": "birth date from the ID card",
    }
    response = clin_client.post(url, data)
    assert response.status_code == 200
    assert "under 1 year old at infusion" in response.content.decode()
    ward_patient.refresh_from_db()
    assert ward_patient.birth_date is None
