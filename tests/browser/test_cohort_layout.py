"""The cohort page read on a portrait tablet (issue 8 item 9): a square ROC, counts clear of the
error bars, and the sources named as a reader knows them."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from patients.demo import DEMO_TEAM, seed_demo
from patients.models import CareTeam
from tests.browser.conftest import SCREENSHOTS, login
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PORTRAIT_TABLET = {"width": 820, "height": 1180}


def _overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_cohort_charts_are_readable_on_a_tablet(new_page: Any, live_server: Any) -> None:
    seed_demo(today=timezone.localdate())
    make_user("dr.zhou", "hematologist", (CareTeam.objects.get(name=DEMO_TEAM),))
    page = new_page()
    page.set_viewport_size(PORTRAIT_TABLET)
    base = live_server.url
    login(page, base, "dr.zhou")
    page.goto(f"{base}/scoring/cohort/")
    page.wait_for_selector("#chart-roc .plot-container svg")
    page.wait_for_selector("#chart-calibration .plot-container svg")

    text = page.locator("main").inner_text()
    assert "the B-cell study (2025)" in text
    assert "seed 00" not in text and ".txt" not in text

    plot = page.locator("#chart-roc .nsewdrag").first.bounding_box()
    assert plot is not None and plot["height"] >= 250
    assert 0.9 <= plot["width"] / plot["height"] <= 1.1, plot

    labels = [t.bounding_box() for t in page.locator("#chart-calibration .textpoint text").all()]
    whiskers = [p.bounding_box() for p in page.locator("#chart-calibration .errorbar path").all()]
    assert labels and whiskers
    for label in labels:
        for whisker in whiskers:
            assert not _overlaps(label, whisker), (label, whisker)
    page.screenshot(path=str(SCREENSHOTS / "cohort-portrait.png"), full_page=True)
