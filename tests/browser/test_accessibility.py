"""axe-core (shipped offline by axe-playwright-python) on the main pages: no serious violations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from patients import services
from tests.browser.conftest import login
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def serious_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_main_pages_have_no_serious_or_critical_axe_violations(new_page, live_server):
    from patients.models import CareTeam

    team = CareTeam.objects.create(name="CAR-T ward")
    user = make_user("nurse.axe", "clinician", (team,))
    p = services.patient_register(
        user=user,
        mrn="AX-1",
        name="Axe Patient",
        infusion_date=timezone.localdate() - timedelta(days=8),
        care_team=team,
        baseline_mrd_pct=6,
    )
    services.lab_record(user=user, patient=p, analyte="crp", value="210", collected_at=timezone.now())
    services.observation_record(
        user=user, patient=p, date=timezone.localdate(), tmax_c="38.7", oxygen="low_flow"
    )
    page = new_page()
    base = live_server.url
    login(page, base, "nurse.axe")
    for path in (
        "/patients/",
        f"/patients/{p.mrn}/",
        f"/patients/{p.mrn}/labs/new/",
        f"/patients/{p.mrn}/observations/new/",
    ):
        page.goto(base + path)
        if path == f"/patients/{p.mrn}/":
            page.wait_for_selector("#chart-score .plot-container")
        assert serious_violations(page) == [], path
