"""The bedside and review flows in a real browser (issue 3): Chromium via Playwright."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from patients import services
from patients.models import Patient
from scoring.models import Alert
from tests.browser.conftest import SCREENSHOTS, login
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def ward(db: None) -> dict[str, Any]:
    from patients.models import CareTeam

    team = CareTeam.objects.create(name="CAR-T ward")
    return {
        "team": team,
        "clinician": make_user("nurse.li", "clinician", (team,)),
        "hematologist": make_user("dr.wang", "hematologist", (team,)),
    }


def _seed_ward(user: Any, team: Any) -> None:
    """A few patients at different days, so the ward list has something to sort."""
    today = timezone.localdate()
    for mrn, name, day in (("B-102", "Zhang Min", 9), ("B-103", "Chen Yu", 2), ("B-104", "Liu Yang", 15)):
        p = services.patient_register(
            user=user,
            mrn=mrn,
            name=name,
            infusion_date=today - timedelta(days=day),
            care_team=team,
            baseline_mrd_pct=8 if mrn == "B-102" else 1,
            post_ld_mrd_pct=2,
            synthetic=True,
        )
        if day >= 7:
            services.lab_panel_record(
                user=user,
                patient=p,
                collected_at=timezone.make_aware(
                    timezone.datetime.combine(
                        p.infusion.infusion_date + timedelta(days=7), timezone.datetime.min.time()
                    )
                )
                + timedelta(hours=7),
                entries=[
                    services.LabEntry("anc", "0.3"),
                    services.LabEntry("crp", "120" if mrn == "B-104" else "230"),
                    services.LabEntry("ferritin", "4000"),
                    services.LabEntry("il6", "80"),
                    services.LabEntry("aptt", "41"),
                ],
                confirmed=True,
            )


def test_clinician_registers_enters_a_panel_with_a_unit_slip_and_sees_the_new_band(
    new_page, live_server, ward
):
    _seed_ward(ward["clinician"], ward["team"])
    page = new_page()
    base = live_server.url
    login(page, base, "nurse.li")
    page.click("text=Register a patient >> nth=0")
    infusion = timezone.localdate() - timedelta(days=8)
    page.fill("#id_mrn", "B-101")
    page.fill("#id_name", "Wang Fang")
    page.select_option("#id_sex", "F")
    page.fill("#id_birth_date", "2016-05-04")
    page.fill("#id_product", "CD19 CAR-T (site product)")
    page.fill("#id_infusion_date", infusion.isoformat())
    page.fill("#id_baseline_mrd_pct", "12")
    page.fill("#id_post_ld_mrd_pct", "3")
    page.click("button:has-text('Register')")
    page.wait_for_url(f"{base}/patients/B-101/", wait_until="load")
    assert page.locator("text=Patient B-101 registered.").is_visible()

    page.click("text=Enter labs")
    day7 = infusion + timedelta(days=7)
    page.fill("#id_collected_date", day7.isoformat())
    page.fill("#id_collected_time", "07:30")
    # The slip: an ANC typed in cells/µL while the unit select still says 10^9/L.
    page.fill("#id_anc_value", "300")
    page.fill("#id_crp_value", "25")
    page.select_option("#id_crp_unit", "mg/dL")
    page.fill("#id_ferritin_value", "12000")
    page.fill("#id_il6_value", "650")
    page.fill("#id_aptt_value", ">180")
    page.click("button:has-text('Save panel')")
    error = page.locator("#id_anc_value_error")
    assert "outside the accepted range 0–100 10^9/L" in error.inner_text()
    assert page.input_value("#id_anc_value") == "300"
    assert page.input_value("#id_crp_value") == "25"
    assert page.input_value("#id_crp_unit") == "mg/dL"
    assert page.input_value("#id_aptt_value") == ">180"
    assert page.input_value("#id_collected_date") == day7.isoformat()
    assert not Patient.objects.get(mrn="B-101").labs.exists()

    page.select_option("#id_anc_unit", "cells/µL")
    page.click("button:has-text('Save panel')")
    # APTT >180 s lies above the usual range: the form asks to confirm exactly these values.
    warnings = " ".join(page.locator(".warnlist").all_inner_texts())
    assert "APTT >180 s is outside the usual range" in warnings
    assert "CRP 25 mg/dL is 250 mg/L" in warnings  # and a unit other than the usual one
    assert not Patient.objects.get(mrn="B-101").labs.exists()
    page.click("button:has-text('Confirm these values and save')")
    page.wait_for_url(f"{base}/patients/B-101/", wait_until="load")
    assert page.locator("text=Lab panel saved").is_visible()
    day7_card = page.locator("section[aria-labelledby=day7-h]")
    assert "high" in day7_card.inner_text()
    assert "6 points" in day7_card.inner_text()
    page.wait_for_selector("#chart-score .plot-container svg")
    page.wait_for_selector("#chart-lab-crp .plot-container")
    assert page.locator(".chart .plot-container").count() >= 4
    page.screenshot(path=str(SCREENSHOTS / "patient-timeline.png"), full_page=True)

    page.click("text=Ward list >> nth=0")
    page.wait_for_selector("table.ward")
    rows = page.locator("table.ward tbody tr")
    assert rows.first.locator("th").inner_text().startswith("B-101")
    page.screenshot(path=str(SCREENSHOTS / "ward-list.png"), full_page=True)


def test_clinician_enters_observations_making_grade_3_and_sees_the_alert(new_page, live_server, ward):
    p = services.patient_register(
        user=ward["clinician"],
        mrn="B-201",
        name="Zhao Lei",
        infusion_date=timezone.localdate() - timedelta(days=3),
        care_team=ward["team"],
    )
    page = new_page()
    base = live_server.url
    login(page, base, "nurse.li")
    page.goto(f"{base}/patients/{p.mrn}/")
    page.click("text=Enter observation")
    page.fill("#id_date", (p.infusion.infusion_date + timedelta(days=2)).isoformat())
    page.fill("#id_tmax_c", "39.4")
    page.select_option("#id_oxygen_device", "nasal_cannula")
    page.fill("#id_oxygen_flow", "8")
    page.fill("#id_vasopressors", "0")
    page.check("#id_antipyretic")
    page.click("button:has-text('Save observation')")
    page.wait_for_url(f"{base}/patients/{p.mrn}/", wait_until="load")
    alerts = page.locator("section[aria-labelledby=alerts-h]")
    assert "CRS grade ≥ 3" in alerts.inner_text()
    assert page.locator("text=Severe CRS observed, grade 3 on day 2.").is_visible()
    page.wait_for_selector("#chart-crs .plot-container")
    page.goto(f"{base}/patients/")
    assert "CRS grade ≥ 3" in page.locator("table.ward").inner_text()


def test_hematologist_acknowledges_an_alert(new_page, live_server, ward):
    p = services.patient_register(
        user=ward["clinician"],
        mrn="B-301",
        name="Sun Hui",
        infusion_date=timezone.localdate() - timedelta(days=4),
        care_team=ward["team"],
    )
    services.observation_record(
        user=ward["clinician"],
        patient=p,
        date=p.infusion.infusion_date + timedelta(days=1),
        tmax_c="39.0",
        hypotension="one_vasopressor",
    )
    page = new_page()
    base = live_server.url
    login(page, base, "dr.wang")
    page.click(f"text={p.mrn}")
    page.wait_for_url(f"{base}/patients/{p.mrn}/", wait_until="load")
    alert = Alert.objects.get(patient=p, kind="severe_crs")
    page.fill(f"#ack-{alert.pk}", "Seen at the bedside; ICU consulted.")
    page.click("button:has-text('Acknowledge')")
    page.wait_for_url(f"{base}/patients/{p.mrn}/", wait_until="load")
    assert page.locator("text=Alert acknowledged.").is_visible()
    assert page.locator("text=No open alerts.").is_visible()
    alert.refresh_from_db()
    assert alert.acknowledged_by.username == "dr.wang"
    assert alert.acknowledgement_note == "Seen at the bedside; ICU consulted."
