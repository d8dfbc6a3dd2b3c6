"""A hematologist imports labs.csv in the browser: a bad row, the fix, the preview, the summary.

The file is stored and checked, then imported, by background jobs: the test runs them as the
worker would (``run_queued_jobs``) while the pages refresh themselves until each job ends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from patients import services
from patients.models import CareTeam, DataTransfer, LabResult
from tests.browser.conftest import SCREENSHOTS, login
from tests.browser.test_accessibility import serious_violations
from tests.conftest import make_user, run_queued_jobs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _csv(anc: str) -> dict[str, Any]:
    day7 = (timezone.localdate() - timedelta(days=1)).isoformat()
    text = (
        "mrn,collected_at,analyte,value,unit,note\n"
        f"B-401,{day7}T07:30,crp,25,mg/dL,morning sample\n"
        f"B-401,{day7}T07:30,anc,{anc},10^9/L,\n"
    )
    return {"name": "labs.csv", "mimeType": "text/csv", "buffer": text.encode("utf-8")}


def test_hematologist_fixes_a_bad_row_previews_and_imports_labs(new_page, live_server):
    team = CareTeam.objects.create(name="CAR-T ward")
    hematologist = make_user("dr.wang", "hematologist", (team,))
    services.patient_register(
        user=hematologist,
        mrn="B-401",
        name="Zhou Jie",
        infusion_date=timezone.localdate() - timedelta(days=8),
        care_team=team,
    )
    page = new_page()
    base = live_server.url
    login(page, base, "dr.wang")
    page.click("nav >> text=Import")
    page.wait_for_url(f"{base}/patients/files/import/", wait_until="load")

    page.select_option("#id_kind", "labs")
    page.set_input_files("#id_file", files=[_csv('"0,2"')])
    page.click("button:has-text('Check the file')")
    page.wait_for_url(f"{base}/patients/files/import/upload/*/", wait_until="load")
    assert "being checked in the background" in page.inner_text("main")
    run_queued_jobs()  # the worker; the page refreshes itself until the check ends
    page.wait_for_selector("#import-errors-title", timeout=10_000)
    errors = page.locator("table.import-errors tbody tr")
    assert errors.count() == 1
    cells = errors.first.locator("td")
    assert cells.nth(0).inner_text() == "3"
    assert cells.nth(1).inner_text() == "value"
    assert "comma" in cells.nth(3).inner_text()
    assert "nothing was imported" in page.locator("#import-errors-title").inner_text()
    assert page.input_value("#id_kind") == "labs"  # the corrected file's form keeps the choices
    assert not LabResult.objects.exists()
    assert serious_violations(page) == []

    page.set_input_files("#id_file", files=[_csv("0.2")])
    page.click("button:has-text('Check the file')")
    page.wait_for_url(f"{base}/patients/files/import/upload/*/", wait_until="load")
    run_queued_jobs()
    page.wait_for_selector("table.import-preview", timeout=10_000)
    preview = page.locator("table.import-preview").inner_text()
    assert "Rows to create\t2" in preview
    assert not LabResult.objects.exists()
    assert serious_violations(page) == []
    page.screenshot(path=str(SCREENSHOTS / "import-preview.png"), full_page=True)

    page.click("button:has-text('Confirm the import')")
    page.wait_for_url(f"{base}/patients/files/import/job/*/", wait_until="load")
    assert "being imported in the background" in page.inner_text("main")
    assert not LabResult.objects.exists()
    run_queued_jobs()  # the job page refreshes itself, then shows the import's result
    page.wait_for_selector("text=labs.csv was imported.", timeout=10_000)
    summary = page.locator("table.import-summary").inner_text()
    assert "Rows created\t2" in summary and "Patients recomputed\t1" in summary
    assert LabResult.objects.filter(patient__mrn="B-401").count() == 2
    assert DataTransfer.objects.filter(dry_run=False, accepted=True, username="dr.wang").count() == 1
    assert serious_violations(page) == []

    page.click("nav >> text=Export")
    assert "for the 1 patient(s) of your care teams" in page.locator("main").inner_text()
    with page.expect_download() as download:
        page.click("button:has-text('Download the zip file')")
    assert download.value.suggested_filename.startswith("crsrisk-cohort-")
    assert serious_violations(page) == []
