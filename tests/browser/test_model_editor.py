"""The score-model editor in a real browser: draft, a refused cut-point, fix, activate (SPEC 5)."""

from __future__ import annotations

from typing import Any

import pytest

from scoring.models import ModelStatus, ScoreModel
from tests.browser.conftest import SCREENSHOTS, login
from tests.browser.test_accessibility import serious_violations
from tests.conftest import make_user, run_queued_jobs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def hematologist(db: None) -> Any:
    from patients.models import CareTeam

    team = CareTeam.objects.create(name="CAR-T ward")
    return make_user("dr.wang", "hematologist", (team,))


def test_hematologist_drafts_from_provisional_fixes_a_bad_cut_point_and_activates(
    new_page, live_server, hematologist
):
    page = new_page()
    base = live_server.url
    login(page, base, "dr.wang")
    page.goto(f"{base}/scoring/models/provisional-v0/")
    page.click("text=New version from this model")
    page.fill("#id_name", "site-aptt-v1")
    page.select_option("#id_provenance", "edited")
    page.fill("#id_description", "APTT cut at 1.5 × our upper limit of 40 s")
    page.click("button:has-text('Create the draft')")
    page.wait_for_url(f"{base}/scoring/models/site-aptt-v1/edit/")

    page.fill("#id_aptt_d7-cut", "6O")  # a letter O typed for a zero
    page.fill("#id_aptt_d7-label", "APTT ≥ 60 s")
    page.fill("#id_reason", "local APTT upper limit 40 s")
    page.click("button:has-text('Save the draft')")
    error = page.locator("[id='id_aptt_d7-cut_error']")
    assert "number" in error.inner_text()
    assert page.input_value("#id_aptt_d7-cut") == "6O"
    assert page.input_value("#id_aptt_d7-label") == "APTT ≥ 60 s"
    stored = ScoreModel.objects.get(name="site-aptt-v1")
    assert {f["code"]: f["cut"] for f in stored.spec["factors"]}["aptt_d7"] == "55.5"
    page.screenshot(path=str(SCREENSHOTS / "model-editor.png"), full_page=True)
    assert serious_violations(page) == []

    page.fill("#id_aptt_d7-cut", "60")
    page.click("button:has-text('Save the draft')")
    page.wait_for_url(f"{base}/scoring/models/site-aptt-v1/")
    assert "edited from provisional-v0" in page.inner_text("main")
    assert serious_violations(page) == []
    page.check("#confirm-activate")
    page.click("button:has-text('Activate site-aptt-v1')")
    page.wait_for_url(f"{base}/jobs/*/")
    assert "Waiting for a worker" in page.inner_text("main")
    assert ScoreModel.objects.get(name="site-aptt-v1").status == ModelStatus.DRAFT
    run_queued_jobs()  # the worker; the job page refreshes itself until the job ends
    page.wait_for_selector("text=site-aptt-v1 is now active", timeout=10_000)
    assert serious_violations(page) == []
    page.goto(f"{base}/scoring/models/")
    row = page.locator("tr", has_text="site-aptt-v1")
    assert "active" in row.inner_text()
    model = ScoreModel.objects.get(name="site-aptt-v1")
    assert model.status == ModelStatus.ACTIVE
    assert {f["code"]: f["cut"] for f in model.spec["factors"]}["aptt_d7"] == "60"
    assert ScoreModel.objects.get(name="provisional-v0").status == ModelStatus.RETIRED
