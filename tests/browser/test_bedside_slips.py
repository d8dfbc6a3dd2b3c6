"""Issue 8 on a tablet (820×1180): the everyday slips typed key by key, as a person does.

Each slip gets a message or a confirmation and stores nothing wrong; the test then
checks what was stored.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from patients.models import LabResult, Observation, Patient
from tests.browser.conftest import CHROMIUM_ARGS, login
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TABLET_PORTRAIT = {"width": 820, "height": 1180}


@pytest.fixture
def nurse(db: None) -> Any:
    from patients.models import CareTeam

    team = CareTeam.objects.create(name="CAR-T ward")
    return make_user("nurse.li", "clinician", (team,))


@pytest.fixture
def tablet(new_page: Any) -> Any:
    page = new_page()
    page.set_viewport_size(TABLET_PORTRAIT)
    return page


def type_into(page: Any, selector: str, text: str) -> None:
    """Clear a field and type ``text`` key by key."""
    field = page.locator(selector)
    field.click()
    field.press("Control+a")
    field.press("Backspace")
    field.press_sequentially(text, delay=20)


def type_date(page: Any, selector: str, day: Any) -> None:
    """Type a date key by key into the browser's date field, in the order its segments show.

    Chromium orders the segments by the system's locale (month first here, day first in
    many), so the first attempt tells which one this browser shows.
    """
    field = page.locator(selector)
    for order in ("%m%d%Y", "%d%m%Y"):
        field.focus()  # keyboard focus lands on the first segment, as a Tab would
        field.press_sequentially(day.strftime(order), delay=20)
        if field.input_value() == day.isoformat():
            return
    raise AssertionError(f"could not type {day} into {selector}: {field.input_value()}")


def type_time(page: Any, selector: str, hhmm: str) -> None:
    """Type a time key by key; a 12-hour field also takes its AM/PM segment."""
    field = page.locator(selector)
    for keys in (hhmm.replace(":", ""), hhmm.replace(":", "") + "A"):
        field.focus()
        field.press_sequentially(keys, delay=20)
        if field.input_value() == hhmm:
            return
    raise AssertionError(f"could not type {hhmm} into {selector}: {field.input_value()}")


def test_registration_slips_on_a_tablet(tablet, live_server, nurse):
    page, base = tablet, live_server.url
    assert CHROMIUM_ARGS  # the guarded browser of tests.browser.conftest
    login(page, base, "nurse.li")
    page.goto(f"{base}/patients/register/")
    today = timezone.localdate()
    infusion = today + timedelta(days=12)  # a planned infusion
    type_into(page, "#id_mrn", "B-701")
    type_into(page, "#id_name", "Wang Fang")
    type_date(page, "#id_birth_date", today + timedelta(days=30))  # the year slip: a future birth
    type_date(page, "#id_infusion_date", infusion)
    type_into(page, "#id_baseline_mrd_pct", "12")
    type_into(page, "#id_post_ld_mrd_pct", "0,5")  # the decimal-comma slip
    page.click("button:has-text('Register')")
    page.wait_for_selector("#id_post_ld_mrd_pct_error")
    assert "Post-lymphodepletion MRD (%): value '0,5' has a comma" in page.inner_text(
        "#id_post_ld_mrd_pct_error"
    )
    assert "is in the future: check the year" in page.inner_text("#id_birth_date_error")
    assert page.input_value("#id_post_ld_mrd_pct") == "0,5"
    assert page.get_attribute("#id_post_ld_mrd_pct", "type") == "text"
    assert page.get_attribute("#id_post_ld_mrd_pct", "inputmode") == "decimal"
    assert not Patient.objects.exists()

    # Fixed: MRD with a point; and a birth year one century off, which asks.
    type_into(page, "#id_post_ld_mrd_pct", "0.5")
    birth = infusion.replace(year=infusion.year - 104)
    type_date(page, "#id_birth_date", birth)
    page.click("button:has-text('Register')")
    page.wait_for_selector(".banner-warn")
    assert "104 years old at infusion" in page.inner_text(".banner-warn")
    assert not Patient.objects.exists()
    page.click("button:has-text('Confirm the dates and save')")
    page.wait_for_url(f"{base}/patients/B-701/", wait_until="load")
    patient = Patient.objects.select_related("infusion").get(mrn="B-701")
    assert patient.infusion.post_ld_mrd_pct == Decimal("0.5")
    assert patient.infusion.baseline_mrd_pct == Decimal("12")
    assert patient.birth_date == birth


def test_lab_and_observation_slips_on_a_tablet(tablet, live_server, nurse):
    from patients import services

    patient = services.patient_register(
        user=nurse,
        mrn="B-702",
        name="Chen Yu",
        infusion_date=timezone.localdate() - timedelta(days=7),
        care_team=nurse.profile.care_teams.get(),
    )
    page, base = tablet, live_server.url
    login(page, base, "nurse.li")
    page.goto(f"{base}/patients/{patient.mrn}/labs/new/")
    yesterday = timezone.localdate() - timedelta(days=1)  # a morning that has come, whatever the hour
    type_date(page, "#id_collected_date", yesterday)
    type_time(page, "#id_collected_time", "07:30")
    # The unit slip on a first value: CRP 25 with mg/dL chosen. The page previews it.
    page.select_option("#id_crp_unit", "mg/dL")
    type_into(page, "#id_crp_value", "25")
    assert page.locator("output[data-value=id_crp_value]").inner_text() == "= 250 mg/L"
    type_into(page, "#id_ferritin_value", "1.2e4")  # an exponent: refused on a form
    page.click("button:has-text('Save panel')")
    page.wait_for_selector("#id_ferritin_value_error")
    assert "has an exponent, which is not accepted here" in page.inner_text("#id_ferritin_value_error")
    assert page.input_value("#id_crp_value") == "25"
    assert page.input_value("#id_crp_unit") == "mg/dL"
    assert not LabResult.objects.exists()

    type_into(page, "#id_ferritin_value", "12000")
    page.click("button:has-text('Save panel')")
    page.wait_for_selector(".banner-warn")
    warnings = " ".join(page.locator(".warnlist").all_inner_texts())
    assert "CRP 25 mg/dL is 250 mg/L: it was given in mg/dL, not in the usual mg/L" in warnings
    assert not LabResult.objects.exists()
    page.click("button:has-text('Confirm these values and save')")
    page.wait_for_url(f"{base}/patients/{patient.mrn}/", wait_until="load")
    stored = {lab.analyte: lab for lab in LabResult.objects.filter(patient=patient)}
    assert (stored["crp"].value, stored["crp"].entered_unit) == (Decimal(250), "mg/dL")
    assert stored["ferritin"].value == Decimal(12000)

    # Ferritin in ng/mL is the same number as µg/L: no preview, no question.
    page.goto(f"{base}/patients/{patient.mrn}/labs/new/")
    type_date(page, "#id_collected_date", yesterday)
    type_time(page, "#id_collected_time", "07:45")
    page.select_option("#id_ferritin_unit", "ng/mL")
    type_into(page, "#id_ferritin_value", "11000")
    page.click("button:has-text('Save panel')")
    page.wait_for_url(f"{base}/patients/{patient.mrn}/", wait_until="load")
    assert LabResult.objects.filter(patient=patient, analyte="ferritin").count() == 2

    # The decimal comma in Tmax.
    page.goto(f"{base}/patients/{patient.mrn}/observations/new/")
    assert page.get_attribute("#id_tmax_c", "type") == "text"
    type_into(page, "#id_tmax_c", "38,6")
    page.click("button:has-text('Save observation')")
    page.wait_for_selector("#id_tmax_c_error")
    assert "Highest temperature (°C): value '38,6' has a comma" in page.inner_text("#id_tmax_c_error")
    assert page.input_value("#id_tmax_c") == "38,6"
    assert not Observation.objects.exists()
    type_into(page, "#id_tmax_c", "38.6")
    page.click("button:has-text('Save observation')")
    page.wait_for_url(f"{base}/patients/{patient.mrn}/", wait_until="load")
    assert Observation.objects.get(patient=patient).tmax_c == Decimal("38.6")
