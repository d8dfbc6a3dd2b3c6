"""The cohort analytics page draws its charts in a real browser (SPEC 6)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from patients.demo import DEMO_TEAM, seed_demo
from patients.models import CareTeam
from tests.browser.conftest import SCREENSHOTS, login
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHARTS = ("chart-grades", "chart-roc", "chart-calibration", "chart-rfs-regeneration")


def test_hematologist_opens_cohort_analytics_and_sees_the_charts(new_page: Any, live_server: Any) -> None:
    seed_demo(today=timezone.localdate())
    make_user("dr.zhou", "hematologist", (CareTeam.objects.get(name=DEMO_TEAM),))
    page = new_page()
    base = live_server.url
    login(page, base, "dr.zhou")
    page.click("nav >> text=Cohort analytics")
    page.wait_for_url(f"{base}/scoring/cohort/", wait_until="load")
    for chart_id in CHARTS:
        page.wait_for_selector(f"#{chart_id} .plot-container svg")
    # The KM chart has a step curve per group, and the ROC chart states the paper's AUC.
    assert page.locator("#chart-rfs-regeneration .scatterlayer .trace").count() >= 2
    assert "0.875" in page.locator("#chart-roc").inner_text()
    assert page.locator("text=Log-rank p").first.is_visible()
    page.screenshot(path=str(SCREENSHOTS / "cohort-analytics.png"), full_page=True)
