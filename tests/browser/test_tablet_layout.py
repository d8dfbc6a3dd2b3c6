"""The ward list on a portrait tablet (issue 8 item 7): no sideways scrolling, the trend in words."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from patients import services
from patients.models import CareTeam
from scoring.models import Alert
from tests.browser.conftest import SCREENSHOTS, login
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PORTRAIT_TABLET = {"width": 820, "height": 1180}
LONG_MRN = "HOSP2025000123456789ABCDEFGHIJKL"  # 32 characters, the longest an MRN may be


def _at(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def _seed(user: Any, team: CareTeam) -> None:
    """A ward with every kind of alert on one row, the longest MRN, and a rising trend."""
    today = timezone.localdate()
    severe = services.patient_register(
        user=user,
        mrn=LONG_MRN,
        name="Alexandra Konstantinopoulou-Wojciechowska",
        infusion_date=today - timedelta(days=9),
        care_team=team,
        baseline_mrd_pct=8,
        post_ld_mrd_pct=7,
    )
    d0 = severe.infusion.infusion_date
    for day, value in ((2, "0"), (4, "0"), (8, "40")):
        services.lab_record(
            user=user,
            patient=severe,
            analyte="bcell",
            value=value,
            collected_at=_at(d0 + timedelta(days=day), 8),
        )
    services.lab_panel_record(
        user=user,
        patient=severe,
        collected_at=_at(d0 + timedelta(days=7), 7),
        entries=[
            services.LabEntry("anc", "0.3"),
            services.LabEntry("crp", "230"),
            services.LabEntry("ferritin", "12000"),
            services.LabEntry("il6", "650"),
            services.LabEntry("aptt", "60"),
        ],
        confirmed=True,
    )
    services.observation_record(
        user=user, patient=severe, date=d0 + timedelta(days=1), tmax_c="37.2", hypotension="no_vasopressor"
    )
    services.observation_record(
        user=user, patient=severe, date=d0 + timedelta(days=3), tmax_c="39.4", hypotension="one_vasopressor"
    )
    rising = services.patient_register(
        user=user,
        mrn="B-150",
        name="Chen Yu",
        infusion_date=today - timedelta(days=3),
        care_team=team,
        baseline_mrd_pct=1,
        post_ld_mrd_pct=1,
    )
    services.lab_record(
        user=user, patient=rising, analyte="crp", value="40", collected_at=_at(today - timedelta(days=2), 7)
    )
    services.lab_record(user=user, patient=rising, analyte="crp", value="250", collected_at=_at(today, 0))
    services.lab_record(user=user, patient=rising, analyte="il6", value="900", collected_at=_at(today, 0))
    kinds = set(Alert.objects.filter(patient=severe, resolved_at__isnull=True).values_list("kind", flat=True))
    assert {"day7_high", "severe_crs", "crs_review", "bcell_regeneration_suspected"} <= kinds


def _horizontal_overflow(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const doc = document.documentElement, wrap = document.querySelector('.table-wrap');
          const heads = {};
          for (const th of document.querySelectorAll('table.ward thead th')) {
            heads[th.dataset.col] = th.getBoundingClientRect().right;
          }
          return {viewport: window.innerWidth, page: doc.scrollWidth - doc.clientWidth,
                  table: wrap.scrollWidth - wrap.clientWidth, heads: heads};
        }"""
    )


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_ward_list_fits_a_portrait_tablet_with_the_trend_in_words(new_page, live_server, language):
    team = CareTeam.objects.create(name="CAR-T ward")
    _seed(make_user("nurse.tab", "clinician", (team,)), team)
    page = new_page()
    page.set_viewport_size(PORTRAIT_TABLET)
    base = live_server.url
    login(page, base, "nurse.tab")
    if language != "en":
        page.select_option("#language-select", language)
        page.click(".lang-switch button")
        page.wait_for_load_state("load")
    page.goto(f"{base}/patients/")
    page.wait_for_selector("table.ward")

    measured = _horizontal_overflow(page)
    assert measured["page"] <= 0, measured
    assert measured["table"] <= 0, measured
    for column in ("patient", "running", "day7", "alerts"):
        assert measured["heads"][column] <= measured["viewport"], (column, measured)
    severe_row = page.locator("table.ward tbody tr", has_text=LONG_MRN)
    for alert in severe_row.locator(".alert-pill").all():
        box = alert.bounding_box()
        assert box is not None and box["x"] + box["width"] <= measured["viewport"], alert.inner_text()

    # Tablets have no hover: the trend is a word beside its arrow, not a title attribute.
    trend = page.locator("table.ward tbody tr", has_text="B-150").locator(".trend")
    expected = "up since yesterday" if language == "en" else "较昨日上升"
    assert expected in trend.inner_text()
    assert trend.get_attribute("title") is None
    page.screenshot(path=str(SCREENSHOTS / f"ward-list-portrait-{language}.png"), full_page=True)
