"""Issue 11 on a tablet (820×1180): a large labs.csv checked and imported in the background."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crsrisk.jobs.models import ImportUpload, Job
from patients import services
from patients.models import CareTeam, DataTransfer, LabResult
from tests.browser.conftest import SCREENSHOTS, login
from tests.browser.test_accessibility import serious_violations
from tests.conftest import make_user, run_queued_jobs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TABLET_PORTRAIT = {"width": 820, "height": 1180}


def _csv(anc: str, extra_rows: int = 0) -> dict[str, object]:
    day7 = timezone.localdate() - timedelta(days=1)
    rows = [
        f"B-501,{day7.isoformat()}T07:30,crp,25,mg/dL,morning sample",
        f"B-501,{day7.isoformat()}T07:30,anc,{anc},10^9/L,",
    ]
    # More rows on earlier hours: a file of several chunks (the test sets 4 KB chunks).
    rows += [
        f"B-501,{day7.isoformat()}T{h % 7:02d}:{h % 60:02d},crp,{10 + h % 50},mg/dL,row {h}"
        for h in range(extra_rows)
    ]
    text = "mrn,collected_at,analyte,value,unit,note\n" + "\n".join(rows) + "\n"
    return {"name": "labs.csv", "mimeType": "text/csv", "buffer": text.encode("utf-8")}


def test_a_large_file_is_refused_then_checked_previewed_and_imported_in_the_background(
    new_page, live_server, settings
):
    settings.IMPORT_UPLOAD_CHUNK_BYTES = 4096
    team = CareTeam.objects.create(name="CAR-T ward")
    hematologist = make_user("dr.li", "hematologist", (team,))
    services.patient_register(
        user=hematologist,
        mrn="B-501",
        name="Chen Yu",
        infusion_date=timezone.localdate() - timedelta(days=8),
        care_team=team,
    )
    page = new_page()
    page.set_viewport_size(TABLET_PORTRAIT)
    base = live_server.url
    login(page, base, "dr.li")
    page.goto(f"{base}/patients/files/import/large/")  # the earlier address leads to the import page
    page.wait_for_url(f"{base}/patients/files/import/", wait_until="load")

    page.select_option("#id_kind", "labs")
    page.set_input_files("#id_file", files=[_csv('"0,2"')])
    page.click("button:has-text('Check the file')")
    page.wait_for_url(f"{base}/patients/files/import/upload/*/", wait_until="load")
    assert "being checked in the background" in page.inner_text("main")
    run_queued_jobs()  # the worker; the page refreshes itself until the check ends
    page.wait_for_selector("#import-errors-title", timeout=10_000)
    assert "nothing was imported" in page.inner_text("#import-errors-title")
    cells = page.locator("table.import-errors tbody tr").first.locator("td")
    assert cells.nth(0).inner_text() == "3" and cells.nth(1).inner_text() == "value"
    assert not LabResult.objects.exists()
    assert serious_violations(page) == []

    assert page.input_value("#id_kind") == "labs"  # the form for the corrected file
    page.set_input_files("#id_file", files=[_csv("0.2", extra_rows=200)])
    page.click("button:has-text('Check the file')")
    page.wait_for_url(f"{base}/patients/files/import/upload/*/", wait_until="load")
    assert ImportUpload.objects.filter(status=ImportUpload.Status.CHECKING).get().chunks.count() > 1
    run_queued_jobs()
    page.wait_for_selector("table.import-preview", timeout=10_000)
    assert "Rows in the file\t202" in page.inner_text("table.import-preview")
    assert not LabResult.objects.exists()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert serious_violations(page) == []
    page.screenshot(path=str(SCREENSHOTS / "large-import-preview.png"), full_page=True)

    page.click("button:has-text('Confirm the import')")
    page.wait_for_url(f"{base}/patients/files/import/job/*/", wait_until="load")
    assert "being imported in the background" in page.inner_text("main")
    run_queued_jobs()
    page.wait_for_selector("text=labs.csv was imported.", timeout=10_000)
    assert LabResult.objects.filter(patient__mrn="B-501").count() == 202
    assert DataTransfer.objects.filter(dry_run=False, accepted=True, username="dr.li").count() == 1
    assert Job.objects.filter(kind=Job.Kind.IMPORT_RUN, status=Job.Status.SUCCEEDED).count() == 1
    assert not ImportUpload.objects.filter(status__in=["checked", "importing"]).exists()
    assert serious_violations(page) == []
