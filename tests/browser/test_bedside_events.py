"""Events are recorded once, on a tablet (issue 8, items 3 and 10): Back and Save again stores nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from patients import services
from patients.models import CareTeam, ClinicalEvent
from tests.browser.conftest import PASSWORD, SCREENSHOTS
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TABLET_PORTRAIT = {"width": 820, "height": 1180}  # the tablet of the bedside trial


@pytest.fixture
def tablet(chromium: Any, live_server: Any, new_page: Any) -> Any:
    """A guarded page (off-origin requests and console errors fail) at the tablet's viewport."""
    page = new_page()
    page.set_viewport_size(TABLET_PORTRAIT)
    return page


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.locator("#id_username").press_sequentially(username)
    page.locator("#id_password").press_sequentially(PASSWORD)
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_url(f"{base}/patients/", wait_until="load")


def _record(page: Any, kind_label: str, on: str, note: str) -> None:
    page.select_option("#id_kind", label=kind_label)
    page.fill("#id_date", on)
    note_field = page.locator("#id_note")
    note_field.fill("")
    note_field.press_sequentially(note)
    page.click("button[type=submit]:has-text('Record event')")
    page.wait_for_load_state("load")


@pytest.mark.parametrize(
    ("kind", "label"), [("cr", "complete remission"), ("last_follow_up", "last follow-up")]
)
def test_an_event_saved_again_after_back_is_stored_once(tablet, live_server, kind, label):
    team = CareTeam.objects.create(name="CAR-T ward")
    make_user("dr.wang", "hematologist", (team,))
    p = services.patient_register(
        user=None,
        mrn="B-401",
        name="Zhou Lan",
        infusion_date=timezone.localdate() - timedelta(days=40),
        care_team=team,
    )
    on = (p.infusion.infusion_date + timedelta(days=28)).isoformat()
    base = live_server.url
    page = tablet
    _sign_in(page, base, "dr.wang")
    page.goto(f"{base}/patients/{p.mrn}/")
    page.click("a:has-text('Record event')")
    page.wait_for_url(f"{base}/patients/{p.mrn}/events/new/", wait_until="load")
    _record(page, label, on, "marrow MRD negative")
    page.wait_for_url(f"{base}/patients/{p.mrn}/", wait_until="load")
    assert page.locator("text=Event recorded.").is_visible()

    # Back to the form, as a person does after saving, and Save again with the same values.
    page.go_back(wait_until="load")
    assert page.url == f"{base}/patients/{p.mrn}/events/new/"
    _record(page, label, on, "marrow MRD negative")
    assert page.url == f"{base}/patients/{p.mrn}/events/new/"  # refused: the form is shown again
    error = page.locator("#id_date_error")
    assert error.is_visible()
    assert f"Already recorded: {label} on {on}." in error.inner_text()
    # The user's input is kept on the re-shown form.
    assert page.locator("#id_note").input_value() == "marrow MRD negative"
    page.screenshot(path=str(SCREENSHOTS / f"event-recorded-once-{kind}.png"), full_page=True)
    assert ClinicalEvent.objects.filter(patient=p, kind=kind).count() == 1


def test_a_second_remission_without_relapse_is_refused_naming_the_first(tablet, live_server):
    team = CareTeam.objects.create(name="CAR-T ward")
    user = make_user("dr.wang", "hematologist", (team,))
    p = services.patient_register(
        user=user,
        mrn="B-402",
        name="Qian Wei",
        infusion_date=timezone.localdate() - timedelta(days=60),
        care_team=team,
    )
    first = p.infusion.infusion_date + timedelta(days=28)
    services.event_record(user=user, patient=p, kind="cr", date=first)
    base = live_server.url
    page = tablet
    _sign_in(page, base, "dr.wang")
    page.goto(f"{base}/patients/{p.mrn}/events/new/")
    second = (p.infusion.infusion_date + timedelta(days=45)).isoformat()
    _record(page, "complete remission", second, "")
    text = page.locator("#id_date_error").inner_text()
    assert f"complete remission on {first:%Y-%m-%d}" in text and "relapse" in text
    _record(page, "relapse", (p.infusion.infusion_date + timedelta(days=40)).isoformat(), "")
    page.wait_for_url(f"{base}/patients/{p.mrn}/", wait_until="load")
    page.goto(f"{base}/patients/{p.mrn}/events/new/")
    _record(page, "complete remission", second, "")
    page.wait_for_url(f"{base}/patients/{p.mrn}/", wait_until="load")
    assert ClinicalEvent.objects.filter(patient=p, kind="cr").count() == 2


def test_the_grade_explains_itself_in_the_table_and_the_chart_hover(tablet, live_server):
    team = CareTeam.objects.create(name="CAR-T ward")
    user = make_user("nurse.li", "clinician", (team,))
    p = services.patient_register(
        user=user,
        mrn="B-403",
        name="Wu Fang",
        infusion_date=timezone.localdate() - timedelta(days=5),
        care_team=team,
    )
    d0 = p.infusion.infusion_date
    services.observation_record(
        user=user, patient=p, date=d0 + timedelta(days=1), tmax_c="38.6", antipyretic=True
    )
    services.observation_record(
        user=user, patient=p, date=d0 + timedelta(days=2), tmax_c="37.2", oxygen="low_flow"
    )
    services.observation_record(
        user=user, patient=p, date=d0 + timedelta(days=3), tmax_c="38.9", hypotension="one_vasopressor"
    )
    base = live_server.url
    page = tablet
    _sign_in(page, base, "nurse.li")
    page.goto(f"{base}/patients/{p.mrn}/")
    table = page.locator("section[aria-labelledby=obs-h] table")
    assert "fever carried from day +1 (antipyretic); low-flow O₂ ≤ 6 L/min" in table.inner_text()
    assert "fever 38.9 °C; one vasopressor" in table.inner_text()
    chart = page.locator("#chart-crs")
    chart.locator(".main-svg").first.wait_for()
    # A tap on a tablet shows the same label as a hover: Plotly's hover of day 2's bar.
    page.evaluate("Plotly.Fx.hover('chart-crs', [{curveNumber: 0, pointNumber: 1}])")
    label = chart.locator(".hoverlayer").text_content() or ""
    assert "grade 2" in label and "fever carried from day +1 (antipyretic)" in label
    chart.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "grade-explains-itself.png"), full_page=False)
