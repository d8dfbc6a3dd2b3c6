"""Entry forms: bad input is refused next to its field, values kept, nothing stored (SPEC 9)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from patients import services
from patients.forms import hypotension_category, oxygen_category, sbp_norm_mmhg
from patients.models import LabResult, Observation, Patient
from scoring.models import Alert, DailyAssessment, PatientSummary
from tests.invariants import assert_stored_equals_scratch
from tests.web.conftest import at, panel_post

pytestmark = pytest.mark.django_db


def snapshot(patient: Patient) -> tuple:
    """Everything a refused form must leave unchanged."""
    return (
        list(LabResult.objects.filter(patient=patient).values()),
        list(Observation.objects.filter(patient=patient).values()),
        list(DailyAssessment.objects.filter(patient=patient).values()),
        list(PatientSummary.objects.filter(patient=patient).values()),
        list(Alert.objects.filter(patient=patient).values()),
    )


def day(patient: Patient, d: int):
    return patient.infusion.infusion_date + timedelta(days=d)


# --- lab panel -----------------------------------------------------------------------------


def test_lab_panel_saves_redirects_and_shows_recomputed_results(clin_client, ward_patient):
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    data = panel_post(day(ward_patient, 2), crp=("25", "mg/dL"), anc=("<100", "cells/µL"), il6="300")
    # Units other than the usual ones (factor ≠ 1) are confirmed first, as typed and as converted.
    response = clin_client.post(url, data)
    assert response.status_code == 200
    assert not LabResult.objects.filter(patient=ward_patient).exists()
    response = clin_client.post(url, {**data, "confirmed": "1", "confirm_digest": response.context["digest"]})
    assert response.status_code == 302
    assert response["Location"] == reverse("patients:detail", args=[ward_patient.mrn])
    crp = LabResult.objects.get(patient=ward_patient, analyte="crp")
    assert crp.value == Decimal("250") and crp.entered_unit == "mg/dL"
    anc = LabResult.objects.get(patient=ward_patient, analyte="anc")
    assert (anc.comparator, anc.value) == ("<", Decimal("0.1"))
    assert_stored_equals_scratch(ward_patient)
    page = clin_client.get(response["Location"])
    assert b"Lab panel saved" in page.content
    assert b"250 mg/L" in page.content


@pytest.mark.parametrize(
    ("field", "value", "unit", "expected"),
    [
        ("crp", "25", "mg/dl/", "accepted: mg/L, mg/dL"),
        ("crp", "12,5", "mg/L", "decimal point"),
        ("crp", "abc<script>", "mg/L", "not a number"),
        ("anc", "500", "10^9/L", "outside the accepted range"),
        ("aptt", "5", "s", "outside the accepted range"),
        ("ferritin", "NaN", "", "not a number"),
    ],
)
def test_bad_lab_value_is_refused_next_to_its_field_and_nothing_is_stored(
    clin_client, ward_patient, field, value, unit, expected
):
    before = snapshot(ward_patient)
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    data = panel_post(day(ward_patient, 2), il6="300", **{field: (value, unit)})
    response = clin_client.post(url, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert expected in html
    assert f'id="id_{field}_value_error"' in html
    # Typed values are kept, escaped.
    assert 'value="300"' in html
    assert "<script>" not in html.split("<main", 1)[1]
    assert snapshot(ward_patient) == before
    assert_stored_equals_scratch(ward_patient)


def test_invalid_collection_date_is_refused(clin_client, ward_patient):
    before = snapshot(ward_patient)
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    data = panel_post(day(ward_patient, 2), crp="30")
    data["collected_date"] = "2025-02-30"
    response = clin_client.post(url, data)
    assert response.status_code == 200
    assert b'id="id_collected_date_error"' in response.content
    assert b'value="30"' in response.content
    assert snapshot(ward_patient) == before


def test_collection_day_out_of_range_is_refused(clin_client, ward_patient):
    before = snapshot(ward_patient)
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    response = clin_client.post(url, panel_post(day(ward_patient, -45), crp="30"))
    assert response.status_code == 200
    assert "outside the accepted range" in response.content.decode()
    assert snapshot(ward_patient) == before


def test_empty_panel_says_enter_a_value(clin_client, ward_patient):
    response = clin_client.post(
        reverse("patients:lab-entry", args=[ward_patient.mrn]), panel_post(day(ward_patient, 2))
    )
    assert response.status_code == 200
    assert b"Enter at least one value" in response.content


def test_warn_range_value_needs_confirmation_of_the_same_values(clin_client, ward_patient):
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    data = panel_post(day(ward_patient, 2), crp="600")
    response = clin_client.post(url, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "outside the usual range" in html
    assert 'name="confirmed" value="1"' in html
    assert not LabResult.objects.filter(patient=ward_patient).exists()
    digest = response.context["digest"]
    assert digest
    # A confirmation for other values does not count: the changed value is warned about again.
    changed = {**data, "crp_value": "700", "confirmed": "1", "confirm_digest": digest}
    response = clin_client.post(url, changed)
    assert response.status_code == 200
    assert not LabResult.objects.filter(patient=ward_patient).exists()
    # Confirming exactly what was shown stores it.
    response = clin_client.post(url, {**data, "confirmed": "1", "confirm_digest": digest})
    assert response.status_code == 302
    lab = LabResult.objects.get(patient=ward_patient)
    assert lab.value == Decimal("600") and lab.flags
    assert_stored_equals_scratch(ward_patient)


def test_tenfold_jump_needs_confirmation(clin_client, clinician, ward_patient):
    services.lab_record(
        user=clinician, patient=ward_patient, analyte="crp", value="20", collected_at=at(ward_patient, 1)
    )
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    response = clin_client.post(url, panel_post(day(ward_patient, 2), crp="250"))
    assert response.status_code == 200
    assert "10-fold" in response.content.decode()
    assert LabResult.objects.filter(patient=ward_patient).count() == 1


def test_lab_correction_needs_a_reason_and_keeps_history(clin_client, clinician, ward_patient):
    lab = services.lab_record(
        user=clinician, patient=ward_patient, analyte="crp", value="20", collected_at=at(ward_patient, 1)
    )
    url = reverse("patients:lab-correct", args=[ward_patient.mrn, lab.pk])
    base = {
        "value": "25",
        "unit": "mg/L",
        "collected_date": day(ward_patient, 1).isoformat(),
        "collected_time": "08:00",
        "version": lab.version,
    }
    response = clin_client.post(url, {**base, "reason": ""})
    assert response.status_code == 200
    assert b"A reason is required" in response.content
    assert b'value="25"' in response.content
    lab.refresh_from_db()
    assert lab.value == Decimal("20")
    response = clin_client.post(url, {**base, "reason": "transcription error"})
    assert response.status_code == 302
    lab.refresh_from_db()
    assert lab.value == Decimal("25")
    assert lab.history.count() == 2
    assert_stored_equals_scratch(ward_patient)
    history = clin_client.get(reverse("patients:history", args=[ward_patient.mrn])).content.decode()
    assert "transcription error" in history
    assert "20 → 25" in history


def test_stale_correction_is_refused_with_a_clear_message(clin_client, clinician, ward_patient):
    lab = services.lab_record(
        user=clinician, patient=ward_patient, analyte="crp", value="20", collected_at=at(ward_patient, 1)
    )
    url = reverse("patients:lab-correct", args=[ward_patient.mrn, lab.pk])
    services.lab_correct(user=clinician, lab=lab, expected_version=1, value="22", reason="first")
    data = {
        "value": "25",
        "unit": "mg/L",
        "collected_date": day(ward_patient, 1).isoformat(),
        "collected_time": "08:00",
        "version": 1,
        "reason": "second",
    }
    response = clin_client.post(url, data)
    assert response.status_code == 200
    assert b"changed by someone else" in response.content
    lab.refresh_from_db()
    assert lab.value == Decimal("22")


def test_lab_void_with_reason(clin_client, clinician, ward_patient):
    lab = services.lab_record(
        user=clinician, patient=ward_patient, analyte="crp", value="20", collected_at=at(ward_patient, 1)
    )
    url = reverse("patients:lab-void", args=[ward_patient.mrn, lab.pk])
    assert clin_client.post(url, {"version": lab.version, "reason": ""}).status_code == 200
    lab.refresh_from_db()
    assert lab.voided_at is None
    assert clin_client.post(url, {"version": lab.version, "reason": "wrong patient"}).status_code == 302
    lab.refresh_from_db()
    assert lab.voided_at is not None and lab.void_reason == "wrong patient"
    assert_stored_equals_scratch(ward_patient)


# --- observations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "flow", "expected"),
    [
        ("none", None, "none"),
        ("nasal_cannula", Decimal("2"), "low_flow"),
        ("nasal_cannula", Decimal("6"), "low_flow"),
        ("nasal_cannula", Decimal("6.5"), "high_flow"),
        ("blow_by", None, "low_flow"),
        ("facemask", None, "high_flow"),
        ("non_rebreather", None, "high_flow"),
        ("venturi", None, "high_flow"),
        ("cpap", None, "positive_pressure"),
        ("bipap", None, "positive_pressure"),
        ("intubation", None, "positive_pressure"),
    ],
)
def test_oxygen_category_from_device_and_flow(device, flow, expected):
    assert oxygen_category(device, flow) == expected


@pytest.mark.parametrize("device", ["none", "blow_by", "facemask", "non_rebreather", "cpap"])
def test_a_flow_with_a_device_that_ignores_it_is_refused_not_dropped(device):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        oxygen_category(device, Decimal("8"))
    assert "oxygen_flow" in caught.value.message_dict


def test_room_air_with_a_flow_is_refused_next_to_the_flow_and_nothing_is_stored(clin_client, ward_patient):
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    response = clin_client.post(url, obs_post(day(ward_patient, 2), tmax_c="38.4", oxygen_flow="4"))
    assert response.status_code == 200
    assert b'id="id_oxygen_flow_error"' in response.content
    assert b"only for a nasal cannula" in response.content
    assert b'value="38.4"' in response.content
    assert not Observation.objects.filter(patient=ward_patient).exists()


@pytest.mark.parametrize(
    ("count", "vasopressin", "without", "expected"),
    [
        (0, False, False, "none"),
        (0, False, True, "no_vasopressor"),
        (1, False, False, "one_vasopressor"),
        (1, True, False, "one_vasopressor"),
        (0, True, False, "one_vasopressor"),
        (2, False, False, "multiple_vasopressors"),
        (2, True, False, "multiple_vasopressors"),
    ],
)
def test_hypotension_category_does_not_count_vasopressin(count, vasopressin, without, expected):
    assert hypotension_category(count, vasopressin, without) == expected


@pytest.mark.parametrize(
    ("age_years", "expected"),
    [(0, None), (1, (1, 72)), (5, (5, 80)), (10, (10, 90)), (11, (11, 90)), (40, (40, 90))],
)
def test_pediatric_sbp_norm(age_years, expected):
    from datetime import date

    assert sbp_norm_mmhg(date(2000 - age_years, 6, 1), date(2000, 6, 1)) == expected


def obs_post(d, **extra):
    data = {
        "date": d.isoformat(),
        "tmax_c": "",
        "oxygen_device": "none",
        "oxygen_flow": "",
        "vasopressors": "0",
    }
    data.update(extra)
    return data


def test_observation_making_grade_3_raises_the_alert(clin_client, ward_patient):
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    response = clin_client.post(url, obs_post(day(ward_patient, 2), tmax_c="39.1", oxygen_device="facemask"))
    assert response.status_code == 302
    obs = Observation.objects.get(patient=ward_patient)
    assert (obs.oxygen, obs.hypotension) == ("high_flow", "none")
    assert DailyAssessment.objects.get(patient=ward_patient, day=2).crs_grade == 3
    assert Alert.objects.filter(patient=ward_patient, kind="severe_crs", day=2).exists()
    assert_stored_equals_scratch(ward_patient)
    page = clin_client.get(reverse("patients:detail", args=[ward_patient.mrn])).content.decode()
    assert "Severe CRS observed, grade 3 on day 2" in page
    assert "Severe CRS observed: ASTCT grade 3 on day +2." in page


def test_nasal_cannula_without_flow_is_refused_next_to_the_flow(clin_client, ward_patient):
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    response = clin_client.post(
        url, obs_post(day(ward_patient, 2), tmax_c="38.2", oxygen_device="nasal_cannula")
    )
    assert response.status_code == 200
    assert b'id="id_oxygen_flow_error"' in response.content
    assert b'value="38.2"' in response.content
    assert not Observation.objects.filter(patient=ward_patient).exists()


@pytest.mark.parametrize("tmax", ["29.9", "45.1", "38,5", "hot"])
def test_bad_tmax_is_refused(clin_client, ward_patient, tmax):
    before = snapshot(ward_patient)
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    response = clin_client.post(url, obs_post(day(ward_patient, 2), tmax_c=tmax))
    assert response.status_code == 200
    assert b'id="id_tmax_c_error"' in response.content
    assert snapshot(ward_patient) == before


def test_updating_a_day_prefills_needs_a_reason_and_checks_the_version(clin_client, clinician, ward_patient):
    d = day(ward_patient, 2)
    obs = services.observation_record(
        user=clinician, patient=ward_patient, date=d, tmax_c="38.4", oxygen="low_flow"
    )
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    page = clin_client.get(url, {"date": d.isoformat()}).content.decode()
    assert 'value="38.4"' in page and "As recorded" in page
    data = obs_post(d, tmax_c="39.0", oxygen_device="recorded", version=str(obs.version))
    response = clin_client.post(url, data)
    assert response.status_code == 200
    assert b"A reason is required" in response.content
    response = clin_client.post(url, {**data, "reason": "late entry of the evening peak"})
    assert response.status_code == 302
    obs.refresh_from_db()
    assert (obs.tmax_c, obs.oxygen, obs.version) == (Decimal("39.0"), "low_flow", 2)
    # A stale version is refused with a clear message.
    response = clin_client.post(url, {**data, "tmax_c": "39.5", "reason": "x", "version": "1"})
    assert response.status_code == 200
    assert b"changed by someone else" in response.content
    obs.refresh_from_db()
    assert obs.tmax_c == Decimal("39.0")
    assert_stored_equals_scratch(ward_patient)


def test_observation_void(clin_client, clinician, ward_patient):
    obs = services.observation_record(
        user=clinician, patient=ward_patient, date=day(ward_patient, 1), tmax_c="38.4"
    )
    url = reverse("patients:observation-void", args=[ward_patient.mrn, obs.pk])
    assert clin_client.post(url, {"version": obs.version, "reason": "wrong day"}).status_code == 302
    obs.refresh_from_db()
    assert obs.voided_at is not None
    assert_stored_equals_scratch(ward_patient)


# --- registration and edit -----------------------------------------------------------------


def reg_post(team, **extra):
    data = {
        "mrn": "NEW-1",
        "name": "New Patient",
        "sex": "F",
        "birth_date": "2015-01-01",
        "care_team": str(team.pk),
        "diagnosis": "B-ALL",
        "product": "CD19 CAR-T",
        "infusion_date": "2025-03-01",
        "lymphodepletion_start": "2025-02-25",
        "baseline_mrd_pct": "12",
        "post_ld_mrd_pct": "3",
    }
    data.update(extra)
    return data


def test_register_a_patient(clin_client, team):
    response = clin_client.post(reverse("patients:register"), reg_post(team))
    assert response.status_code == 302
    patient = Patient.objects.get(mrn="NEW-1")
    assert response["Location"] == patient.get_absolute_url()
    assert patient.infusion.baseline_mrd_pct == Decimal("12")
    assert_stored_equals_scratch(patient)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("mrn", "bad mrn!", "MRN must be 1–32 characters"),
        ("baseline_mrd_pct", "120", "120 is outside the accepted range. Accepted: a number from 0 to 100 %"),
        ("infusion_date", "", "required"),
        ("lymphodepletion_start", "2025-03-05", "on or before the infusion date"),
        ("name", "", "required"),
    ],
)
def test_register_refuses_bad_input_keeping_values(clin_client, team, field, value, expected):
    response = clin_client.post(reverse("patients:register"), reg_post(team, **{field: value}))
    assert response.status_code == 200
    html = response.content.decode()
    assert expected in html
    assert f'id="id_{field}_error"' in html
    assert 'value="New Patient"' in html or field == "name"
    assert not Patient.objects.exists()


def test_register_reports_every_mistake_in_one_pass(clin_client, team):
    # SPEC 9: one answer says everything that is wrong, not one mistake per submission.
    data = reg_post(team, mrn="UX 001!", lymphodepletion_start="2025-03-05", baseline_mrd_pct="150")
    html = clin_client.post(reverse("patients:register"), data).content.decode()
    for field in ("mrn", "lymphodepletion_start", "baseline_mrd_pct"):
        assert f'id="id_{field}_error"' in html, field
    assert "MRN must be 1–32 characters" in html
    assert "on or before the infusion date" in html
    assert not Patient.objects.exists()


def test_register_refuses_a_team_that_is_not_yours(clin_client, team, other_team):
    response = clin_client.post(reverse("patients:register"), reg_post(team, care_team=str(other_team.pk)))
    assert response.status_code == 200
    assert not Patient.objects.exists()


def test_register_refuses_a_duplicate_mrn(clin_client, team, ward_patient):
    response = clin_client.post(reverse("patients:register"), reg_post(team, mrn=ward_patient.mrn))
    assert response.status_code == 200
    assert b"already exists" in response.content


def test_edit_infusion_data_with_reason_recomputes(clin_client, ward_patient, team):
    url = reverse("patients:edit", args=[ward_patient.mrn])
    data = reg_post(
        team,
        name="Renamed",
        infusion_date=ward_patient.infusion.infusion_date.isoformat(),
        lymphodepletion_start="",
        baseline_mrd_pct="20",
        version=str(ward_patient.version),
        reason="",
    )
    response = clin_client.post(url, data)
    assert response.status_code == 200
    assert b'id="id_reason_error"' in response.content
    data["reason"] = "MRD report received"
    response = clin_client.post(url, data)
    assert response.status_code == 302
    ward_patient.refresh_from_db()
    assert ward_patient.name == "Renamed"
    assert ward_patient.infusion.baseline_mrd_pct == Decimal("20")
    assert_stored_equals_scratch(ward_patient)


def test_history_shows_zero_values_and_site_times(clin_client, clinician, ward_patient, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    d = ward_patient.infusion.infusion_date + timedelta(days=1)
    when = datetime(d.year, d.month, d.day, 17, 30, tzinfo=UTC)  # 01:30 the next day in Shanghai
    services.lab_record(user=clinician, patient=ward_patient, analyte="bcell", value="0", collected_at=when)
    html = clin_client.get(reverse("patients:history", args=[ward_patient.mrn])).content.decode()
    local = when.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert local in html
    assert local.split()[0] != when.strftime("%Y-%m-%d")
    assert when.strftime("%Y-%m-%d %H:%M") not in html
    row = html[html.index("CD19") :]
    assert ">0<" in row.replace(" ", "")


# --- nothing is recorded for a day that has not come yet ------------------------------------


def test_a_lab_collected_in_the_future_is_refused(clin_client, ward_patient):
    before = snapshot(ward_patient)
    url = reverse("patients:lab-entry", args=[ward_patient.mrn])
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = clin_client.post(url, panel_post(tomorrow, crp="30"))
    assert response.status_code == 200
    assert "is in the future" in response.content.decode()
    assert 'value="30"' in response.content.decode()
    assert snapshot(ward_patient) == before


def test_an_observation_for_a_day_still_to_come_is_refused(clin_client, ward_patient):
    before = snapshot(ward_patient)
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = clin_client.post(url, obs_post(tomorrow, tmax_c="38.0"))
    assert response.status_code == 200
    assert "has not come yet" in response.content.decode()
    assert snapshot(ward_patient) == before


def test_services_refuse_events_and_overrides_dated_after_today(hematologist, ward_patient):
    from django.core.exceptions import ValidationError

    tomorrow = timezone.localdate() + timedelta(days=1)
    before = snapshot(ward_patient)
    with pytest.raises(ValidationError) as caught:
        services.event_record(user=hematologist, patient=ward_patient, kind="cr", date=tomorrow)
    assert "date" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services.grade_override_set(
            user=hematologist, patient=ward_patient, date=tomorrow, grade=2, reason="review"
        )
    assert "date" in caught.value.message_dict
    assert snapshot(ward_patient) == before
    services.event_record(user=hematologist, patient=ward_patient, kind="cr", date=timezone.localdate())


def test_registering_an_infusion_more_than_180_days_ahead_is_refused(clinician, team):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        services.patient_register(
            user=clinician,
            mrn="FAR-1",
            name="Far Ahead",
            infusion_date=timezone.localdate() + timedelta(days=181),
            care_team=team,
        )
    assert "infusion_date" in caught.value.message_dict
    assert not Patient.objects.filter(mrn="FAR-1").exists()
    services.patient_register(
        user=clinician,
        mrn="NEAR-1",
        name="Planned",
        infusion_date=timezone.localdate() + timedelta(days=180),
        care_team=team,
    )


def test_a_day_already_recorded_shows_its_stored_values_and_a_second_save_with_a_reason_replaces_it(
    clin_client, clinician, ward_patient
):
    on = day(ward_patient, 2)
    services.observation_record(user=clinician, patient=ward_patient, date=on, tmax_c="37.2")
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    # A fresh form (no version) for a day that was recorded before it was opened.
    response = clin_client.post(url, obs_post(on, tmax_c="38.9"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "is already recorded" in html and "since you opened" not in html
    assert "37.2" in html  # the stored value, to compare with
    assert 'value="38.9"' in html  # the typed value, kept
    assert Observation.objects.get(patient=ward_patient).tmax_c == Decimal("37.2")
    # Saving again with a reason replaces it: the form now carries the version it showed.
    version = re.search(r'name="version" value="(\d+)"', html).group(1)
    response = clin_client.post(url, obs_post(on, tmax_c="38.9", version=version, reason="re-measured"))
    assert response.status_code == 302
    assert Observation.objects.get(patient=ward_patient).tmax_c == Decimal("38.9")


def test_vasopressors_with_hypotension_not_needing_them_is_a_contradiction_refused(clin_client, ward_patient):
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    data = obs_post(
        day(ward_patient, 2), tmax_c="38.5", vasopressors="1", hypotension_without_vasopressors="on"
    )
    response = clin_client.post(url, data)
    assert response.status_code == 200
    assert b'id="id_hypotension_without_vasopressors_error"' in response.content
    assert not Observation.objects.filter(patient=ward_patient).exists()


def test_event_detail_errors_name_the_event_in_words(hematologist, ward_patient):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        services.event_record(
            user=hematologist, patient=ward_patient, kind="cr", detail="x", date=day(ward_patient, 1)
        )
    assert "A complete remission event takes no detail." in caught.value.message_dict["detail"]
    with pytest.raises(ValidationError) as caught:
        services.event_record(
            user=hematologist, patient=ward_patient, kind="death", date=day(ward_patient, 1)
        )
    assert "A death event needs a detail: crs or other." in caught.value.message_dict["detail"]


def test_a_tmax_far_out_of_range_gets_one_clear_message(clin_client, ward_patient):
    url = reverse("patients:observation-entry", args=[ward_patient.mrn])
    html = clin_client.post(url, obs_post(day(ward_patient, 2), tmax_c="385")).content.decode()
    assert html.count("385 is outside the accepted range. Accepted: a number from 30.0 to 45.0 °C") == 1
    assert "digits before the decimal point" not in html
