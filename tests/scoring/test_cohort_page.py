"""The cohort analytics selector and page (SPEC 6) on stored data."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from patients import services
from patients.demo import seed_demo
from patients.models import CareTeam, ClinicalEvent, Observation, Patient
from scoring import cohort
from scoring.cohort_selectors import cohort_patients
from scoring.models import PatientSummary
from scoring.services import site_zone
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

INFUSION = date(2025, 1, 6)


def register(user, team: CareTeam, mrn: str) -> Patient:
    return services.patient_register(
        user=user,
        mrn=mrn,
        name=f"Patient {mrn}",
        infusion_date=INFUSION,
        care_team=team,
        baseline_mrd_pct=None,
        post_ld_mrd_pct=None,
    )


def on_day(day: int) -> date:
    return INFUSION + timedelta(days=day)


def bcell(user, patient: Patient, day: int, value: str) -> None:
    d = on_day(day)
    services.lab_record(
        user=user,
        patient=patient,
        analyte="bcell",
        value=value,
        collected_at=datetime(d.year, d.month, d.day, 8, tzinfo=site_zone()),
        confirmed=True,
    )


def event(user, patient: Patient, kind: str, day: int, detail: str = "") -> ClinicalEvent:
    return services.event_record(user=user, patient=patient, kind=kind, date=on_day(day), detail=detail)


def by_key(inputs) -> dict[str, cohort.CohortPatient]:
    return {p.key: p for p in inputs.patients}


def test_selector_reads_regeneration_as_of_day_45_not_a_later_confirmation(hematologist, team):
    early = register(hematologist, team, "EARLY")
    for day, value in ((7, "0"), (30, "5"), (37, "6")):  # confirmed on day 37: r = 30
        bcell(hematologist, early, day, value)
    late_confirm = register(hematologist, team, "LATECONF")
    for day, value in ((7, "0"), (44, "2"), (52, "5")):  # suspected on 44, confirmed only on 52
        bcell(hematologist, late_confirm, day, value)
    unassessed = register(hematologist, team, "NOBCELL")
    event(hematologist, unassessed, "cr", 28)

    summary = PatientSummary.objects.get(patient=late_confirm)
    assert (summary.bcell_status, summary.first_regeneration_day) == ("early_regeneration", 44)
    rows = by_key(cohort_patients(hematologist))
    assert rows[str(early.pk)].regeneration_day == 30
    assert rows[str(early.pk)].bcell_assessed_by_landmark
    # On day 45 the regeneration was only suspected: the group must not use day 52's sample.
    assert rows[str(late_confirm.pk)].regeneration_day is None
    assert rows[str(late_confirm.pk)].bcell_assessed_by_landmark
    # ... nor put the patient in the "no regeneration" group: left out and counted instead.
    assert rows[str(late_confirm.pk)].regeneration_unconfirmed_at_landmark
    assert not rows[str(early.pk)].regeneration_unconfirmed_at_landmark
    assert not rows[str(unassessed.pk)].bcell_assessed_by_landmark


def test_selector_skips_voided_events_and_other_teams(hematologist, team, other_team):
    mine = register(hematologist, team, "MINE")
    event(hematologist, mine, "cr", 28)
    wrong = event(hematologist, mine, "relapse", 90)
    services.event_void(
        user=hematologist, event=wrong, expected_version=wrong.version, reason="wrong patient"
    )
    event(hematologist, mine, "last_follow_up", 200)
    outsider = make_user("hema9", "hematologist", (other_team,))
    theirs = register(outsider, other_team, "THEIRS")

    inputs = cohort_patients(hematologist)
    assert [p.key for p in inputs.patients] == [str(mine.pk)]
    assert [(e.kind, e.day) for e in inputs.patients[0].events] == [("cr", 28), ("last_follow_up", 200)]
    assert inputs.patients[0].last_known_day == 200
    assert [p.key for p in cohort_patients(outsider).patients] == [str(theirs.pk)]


def observe(user, patient: Patient, days: range) -> None:
    for d in days:
        services.observation_record(user=user, patient=patient, date=on_day(d), tmax_c="37.0")


def test_crs_outcome_is_known_only_when_every_day_of_the_window_is_observed(hematologist, team):
    # The same rule as the local fit: a late lab does not make the CRS outcome known.
    window = 30
    sparse = register(hematologist, team, "SPARSE")
    observe(hematologist, sparse, range(0, 10))
    bcell(hematologist, sparse, 40, "0")  # data after the window, but days 10-30 unobserved
    full = register(hematologist, team, "FULL")
    observe(hematologist, full, range(0, window + 1))
    early = register(hematologist, team, "EARLY")
    observe(hematologist, early, range(0, 3))
    services.observation_record(
        user=hematologist, patient=early, date=on_day(3), tmax_c="39.5", oxygen="high_flow"
    )  # severe CRS on day 3: known from then on
    patients = by_key(cohort_patients(hematologist))
    assert not patients[str(sparse.pk)].crs_outcome_complete
    assert patients[str(full.pk)].crs_outcome_complete
    assert patients[str(early.pk)].crs_outcome_complete


def test_selector_runs_a_constant_number_of_queries(hematologist, team):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            cohort_patients(hematologist)
        return len(ctx)

    first = register(hematologist, team, "Q1")
    event(hematologist, first, "cr", 28)
    bcell(hematologist, first, 7, "0")
    count()  # warm the per-request caches (role, profile, site parameters row)
    few = count()
    for i in range(4):
        p = register(hematologist, team, f"Q{i + 2}")
        event(hematologist, p, "cr", 28)
        event(hematologist, p, "relapse", 100 + i)
        bcell(hematologist, p, 7, "0")
        observe(hematologist, p, range(0, 3))
    assert count() == few


def test_cohort_page_on_the_demo_cohort_draws_every_chart_it_can():
    seed_demo(today=date(2026, 1, 15), password="demo-password-2025!")
    client = Client()
    client.force_login(User.objects.get(username="demo-hematologist"))
    response = client.get(reverse("scoring:cohort"))
    assert response.status_code == 200
    html = response.content.decode()
    report = response.context["report"]
    assert report.n_patients == 125
    assert sum(report.grades.counts) == 125
    # ROC, calibration and the regeneration comparison are drawn from the stored results.
    for chart_id in ("chart-grades", "chart-roc", "chart-calibration", "chart-rfs-regeneration"):
        assert f'id="{chart_id}-data"' in html and f'data-chart="{chart_id}-data"' in html
    roc = json.loads(_json_script(html, "chart-roc-data"))
    assert roc["data"][0]["x"][0] == 0.0 and roc["data"][0]["y"][-1] == 1.0
    assert "0.875" in html and "optimistic" in html
    km = json.loads(_json_script(html, "chart-rfs-regeneration-data"))
    assert km["data"][0]["line"]["shape"] == "hv" and km["data"][0]["y"][0] == 1.0
    comparison = report.rfs_regeneration
    assert all(g.n >= cohort.MIN_PER_GROUP for g in comparison.groups)
    assert comparison.logrank_p is not None and 0 <= comparison.logrank_p <= 1
    assert "Log-rank p" in html and "290 days" in html
    # The therapy comparison is either drawn or refused with the reason, never silently empty.
    if report.rfs_therapy.refused:
        assert "chart-rfs-therapy-data" not in html and "fewer than 5 patients" in html
    else:
        assert 'id="chart-rfs-therapy-data"' in html
    # No inline script (strict CSP): every script tag in the page body is JSON data.
    main = html.split("<main", 1)[1].split("</main>", 1)[0]
    tags = re.findall(r"<script[^>]*>", main)
    assert tags and all('type="application/json"' in t for t in tags)
    assert "not a treatment recommendation" in html


def _json_script(html: str, element_id: str) -> str:
    start = html.index(f'<script id="{element_id}" type="application/json">')
    body = html[start:].split(">", 1)[1]
    return body.split("</script>", 1)[0]


def test_cohort_page_empty_state(hema_client_empty):
    response = hema_client_empty.get(reverse("scoring:cohort"))
    assert response.status_code == 200
    assert b"No patients yet" in response.content
    assert b'data-chart="' not in response.content


def test_cohort_page_refuses_curves_for_small_groups(hematologist, team):
    for i in range(3):
        p = register(hematologist, team, f"S{i}")
        event(hematologist, p, "cr", 28)
        bcell(hematologist, p, 7, "0")
        event(hematologist, p, "last_follow_up", 300)
    client = Client()
    client.force_login(hematologist)
    response = client.get(reverse("scoring:cohort"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "fewer than 5 patients" in html
    assert "chart-rfs-regeneration-data" not in html
    assert response.context["report"].rfs_regeneration.groups[1].n == 3


def test_cohort_page_refuses_the_roc_with_fewer_than_five_patients_with_severe_crs(hematologist, team):
    patients = [register(hematologist, team, f"R{i}") for i in range(10)]
    # The stored day-7 results of 4 patients with severe CRS (on day 2) and 6 without, all
    # with a complete day-7 score and a known outcome: observed every day to onset or day 30.
    for i, p in enumerate(patients):
        severe = i < 4
        PatientSummary.objects.filter(patient=p).update(
            day7_complete=True,
            day7_points=i % 5,
            severe_crs=severe,
            severe_observed_day=2 if severe else None,
            max_crs_grade=3 if severe else 1,
            last_data_day=30,
        )
        Observation.objects.bulk_create(
            Observation(patient=p, date=on_day(d), entered_at=timezone.now())
            for d in range(0, 3 if severe else 31)
        )
    client = Client()
    client.force_login(hematologist)
    response = client.get(reverse("scoring:cohort"))
    assert response.status_code == 200
    roc = response.context["report"].roc
    assert (roc.n, roc.events, roc.refused) == (10, 4, cohort.REFUSED_TOO_FEW)
    html = response.content.decode()
    assert "fewer than 5 patients with severe CRS or fewer than 5 without" in html
    assert "chart-roc-data" not in html
    assert "Hanley–McNeil" not in html  # no AUC line


def test_cohort_nav_link_is_shown_to_hematologists_only(hematologist, clinician):
    url = reverse("scoring:cohort")
    hema, clin = Client(), Client()
    hema.force_login(hematologist)
    clin.force_login(clinician)
    assert f'href="{url}"'.encode() in hema.get(reverse("patients:ward")).content
    assert f'href="{url}"'.encode() not in clin.get(reverse("patients:ward")).content
    assert clin.get(url).status_code == 403


@pytest.fixture
def hema_client_empty(db) -> Client:
    team = CareTeam.objects.create(name="Empty ward")
    c = Client()
    c.force_login(make_user("hema-empty", "hematologist", (team,)))
    return c
