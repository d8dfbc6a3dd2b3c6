"""The ward list (SPEC 3.5, 8.1): who is on it, the risk order, reminders, constant queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from patients import services
from patients.models import LabResult, Observation
from patients.selectors import patient_reminders, ward_rows
from scoring.models import PatientSummary
from tests.web.conftest import at, register

pytestmark = pytest.mark.django_db


def day7_panel(user, patient, *, crp="250", anc="0.2", ferritin="12000", il6="600", aptt="48"):
    services.lab_panel_record(
        user=user,
        patient=patient,
        collected_at=at(patient, 7),
        entries=[
            services.LabEntry("anc", anc),
            services.LabEntry("crp", crp),
            services.LabEntry("ferritin", ferritin),
            services.LabEntry("il6", il6),
            services.LabEntry("aptt", aptt),
        ],
        confirmed=True,
    )


def test_empty_ward_has_a_clear_message(clin_client):
    response = clin_client.get(reverse("patients:ward"))
    assert response.status_code == 200
    assert b"No active patients" in response.content


def test_ward_lists_active_patients_only(clin_client, clinician, team):
    register(clinician, team, "ACTIVE", day=10)
    register(clinician, team, "PRE", day=-20)
    register(clinician, team, "OLD", day=120)
    register(clinician, team, "FUTURE", day=-40)
    dead = register(clinician, team, "DEAD", day=12)
    services.event_record(
        user=clinician, patient=dead, kind="death", detail="other", date=timezone.localdate()
    )
    extended = register(clinician, team, "EXT", day=120)
    services.patient_update(
        user=clinician,
        patient=extended,
        expected_version=None,
        reason="long follow-up",
        monitoring_end_day=180,
    )
    ended = register(clinician, team, "ENDED", day=40)
    services.patient_update(
        user=clinician, patient=ended, expected_version=None, reason="moved", monitoring_end_day=30
    )
    _model, rows = ward_rows(clinician, today=timezone.localdate())
    assert sorted(r.patient.mrn for r in rows) == ["ACTIVE", "EXT", "PRE"]


def test_ward_sorts_severe_first_then_day7_band_then_points_then_mrn(clinician, team):
    low = register(clinician, team, "A-LOW", day=9)
    day7_panel(clinician, low, crp="10", anc="2", ferritin="100", il6="10", aptt="30")
    high = register(clinician, team, "B-HIGH", day=9)
    day7_panel(clinician, high)
    mid_running = register(clinician, team, "C-EARLY", day=3, baseline_mrd_pct=12, post_ld_mrd_pct=10)
    severe = register(clinician, team, "D-SEVERE", day=4)
    services.observation_record(
        user=clinician,
        patient=severe,
        date=severe.infusion.infusion_date + timedelta(days=2),
        tmax_c="39.0",
        hypotension="one_vasopressor",
    )
    quiet = register(clinician, team, "E-QUIET", day=2)
    _model, rows = ward_rows(clinician, today=timezone.localdate())
    assert [r.patient.mrn for r in rows] == ["D-SEVERE", "B-HIGH", "C-EARLY", "A-LOW", "E-QUIET"]
    by_mrn = {r.patient.mrn: r for r in rows}
    assert by_mrn["B-HIGH"].summary.day7_band == "high"
    assert by_mrn["C-EARLY"].sort_band == "intermediate"
    assert mid_running and quiet


def test_ward_row_shows_trend_grade_bcell_alerts_and_reminders(clin_client, clinician, team):
    p = register(clinician, team, "T1", day=10)
    services.lab_record(user=clinician, patient=p, analyte="crp", value="10", collected_at=at(p, 8))
    services.lab_record(
        user=clinician, patient=p, analyte="crp", value="250", collected_at=at(p, 10), confirmed=True
    )
    _model, rows = ward_rows(clinician, today=timezone.localdate())
    (row,) = rows
    assert row.day == 10
    assert row.running.day == 10
    assert row.trend == "up" and row.trend_delta == 1
    texts = " ".join(row.reminders)
    assert "Day-7 panel incomplete" in texts
    assert "B-cell count overdue" in texts
    html = clin_client.get(reverse("patients:ward")).content.decode()
    assert "up since yesterday" in html
    assert "not assessed" in html


def test_ward_trend_is_since_yesterday_so_no_new_data_reads_same(clin_client, clinician, team):
    # The score rose between day 8 and day 9, but nothing was entered since: today is day 11.
    p = register(clinician, team, "T2", day=11)
    services.lab_record(user=clinician, patient=p, analyte="crp", value="10", collected_at=at(p, 8))
    services.lab_record(
        user=clinician, patient=p, analyte="crp", value="250", collected_at=at(p, 9), confirmed=True
    )
    _model, rows = ward_rows(clinician, today=timezone.localdate())
    (row,) = rows
    assert row.running.day == 9
    assert (row.trend, row.trend_delta) == ("same", 0)
    html = clin_client.get(reverse("patients:ward")).content.decode()
    assert "same as yesterday" in html


def test_ward_reminders_match_the_patient_page_at_the_edges_of_their_windows(clinician, team):
    # The ward asks the database whether a live B-cell count lies in the last 8 days (site
    # time) and whether today has a live observation; the patient page reads the rows. Today
    # is day 15: the window starts at midnight of day 8.
    inside = register(clinician, team, "R-IN", day=15)
    services.lab_record(
        user=clinician, patient=inside, analyte="bcell", value="0", collected_at=at(inside, 8, 0)
    )
    services.observation_record(user=clinician, patient=inside, date=timezone.localdate(), tmax_c="37.0")
    outside = register(clinician, team, "R-OUT", day=15)
    services.lab_record(
        user=clinician, patient=outside, analyte="bcell", value="0", collected_at=at(outside, 7, 23)
    )
    voided = register(clinician, team, "R-VOID", day=15)
    lab = services.lab_record(
        user=clinician, patient=voided, analyte="bcell", value="0", collected_at=at(voided, 12)
    )
    services.lab_void(user=clinician, lab=lab, expected_version=lab.version, reason="wrong patient")
    obs = services.observation_record(user=clinician, patient=voided, date=timezone.localdate(), tmax_c="37")
    services.observation_void(
        user=clinician, observation=obs, expected_version=obs.version, reason="wrong day"
    )

    model, rows = ward_rows(clinician, today=timezone.localdate())
    by_mrn = {r.patient.mrn: r for r in rows}
    for patient in (inside, outside, voided):
        page = patient_reminders(
            patient,
            today_day=15,
            summary=PatientSummary.objects.filter(patient=patient, model=model).first(),
            model=model.name,
            bcell_labs=list(LabResult.objects.active().filter(patient=patient, analyte="bcell")),
            observations=list(Observation.objects.active().filter(patient=patient)),
        )
        assert by_mrn[patient.mrn].reminders == page, patient.mrn
    assert not any("B-cell" in t or "observation" in t for t in by_mrn["R-IN"].reminders)
    for mrn in ("R-OUT", "R-VOID"):
        texts = " ".join(by_mrn[mrn].reminders)
        assert "B-cell count overdue" in texts and "No bedside observation entered today" in texts, mrn


def test_ward_reads_the_day_rows_of_a_patient_with_data_after_its_today(clinician, team):
    # The summary keeps the last two data days; seen from yesterday, today's data lie ahead,
    # so yesterday's running score and trend come from the day rows.
    p = register(clinician, team, "T3", day=10)
    services.lab_record(user=clinician, patient=p, analyte="crp", value="10", collected_at=at(p, 8))
    services.lab_record(
        user=clinician, patient=p, analyte="crp", value="250", collected_at=at(p, 9), confirmed=True
    )
    services.lab_record(
        user=clinician, patient=p, analyte="crp", value="10", collected_at=at(p, 10), confirmed=True
    )
    (today,) = ward_rows(clinician, today=timezone.localdate())[1]
    assert (today.day, today.running.day, today.trend, today.trend_delta) == (10, 10, "down", -1)
    (yesterday,) = ward_rows(clinician, today=timezone.localdate() - timedelta(days=1))[1]
    assert (yesterday.day, yesterday.running.day, yesterday.trend, yesterday.trend_delta) == (9, 9, "up", 1)


def test_ward_search_by_mrn_or_name(clin_client, clinician, team):
    register(clinician, team, "ZX-1", name="Alice Wong")
    register(clinician, team, "QQ-2", name="Bob Li")
    html = clin_client.get(reverse("patients:ward"), {"q": "wong"}).content.decode()
    assert "ZX-1" in html and "QQ-2" not in html
    html = clin_client.get(reverse("patients:ward"), {"q": "qq-"}).content.decode()
    assert "QQ-2" in html and "ZX-1" not in html
    html = clin_client.get(reverse("patients:ward"), {"q": "nobody"}).content.decode()
    assert "No active patient matches" in html


def _ward_queries(client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("patients:ward"))
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _add_patients(user, team, start: int, count: int) -> None:
    for i in range(start, start + count):
        p = register(user, team, f"Q{i:03d}", day=i % 20 + 1)  # the lab below is on day 1: not in the future
        services.lab_record(user=user, patient=p, analyte="bcell", value="0", collected_at=at(p, 1))
        services.observation_record(user=user, patient=p, date=p.infusion.infusion_date, tmax_c="38.6")


# Outside a test transaction, so the writes' transactions count as in production (BEGIN and
# COMMIT of the access log's insert and of the session's save).
@pytest.mark.django_db(transaction=True)
def test_ward_query_count_is_the_same_for_3_and_30_patients_and_at_most_13(clin_client, clinician, team):
    _add_patients(clinician, team, 0, 3)
    three = _ward_queries(clin_client)
    _add_patients(clinician, team, 3, 27)
    thirty = _ward_queries(clin_client)
    assert three == thirty, f"{three} queries for 3 patients, {thirty} for 30"
    # Issue 10 asks for 15 at most; the ward list makes 13 (docs/performance.md): a regression
    # to 14 or 15 fails here.
    assert thirty <= 13, thirty


def test_patient_page_query_count_does_not_grow_with_data(clin_client, clinician, team):
    p = register(clinician, team, "QP", day=20)
    url = reverse("patients:detail", args=[p.mrn])
    services.lab_record(user=clinician, patient=p, analyte="crp", value="10", collected_at=at(p, 1))
    with CaptureQueriesContext(connection) as small:
        clin_client.get(url)
    for d in range(2, 15):
        services.lab_record(user=clinician, patient=p, analyte="crp", value="11", collected_at=at(p, d))
        services.observation_record(
            user=clinician, patient=p, date=p.infusion.infusion_date + timedelta(days=d), tmax_c="37"
        )
    with CaptureQueriesContext(connection) as big:
        clin_client.get(url)
    assert len(small.captured_queries) == len(big.captured_queries)


def test_ward_max_grade_shows_a_severe_day_after_the_outcome_window_and_blank_without_grades(clinician, team):
    late = register(clinician, team, "L-LATE", day=45)
    d0 = late.infusion.infusion_date
    services.observation_record(user=clinician, patient=late, date=d0 + timedelta(days=3), tmax_c="38.5")
    services.observation_record(
        user=clinician, patient=late, date=d0 + timedelta(days=40), tmax_c="39.0", oxygen="high_flow"
    )
    register(clinician, team, "N-NONE", day=2)
    _model, rows = ward_rows(clinician, today=timezone.localdate())
    by_mrn = {r.patient.mrn: r for r in rows}
    assert by_mrn["L-LATE"].summary.max_crs_grade == 1  # the outcome, days 0…30
    assert by_mrn["L-LATE"].severe_observed and by_mrn["L-LATE"].max_grade_so_far == 3
    assert by_mrn["N-NONE"].max_grade_so_far is None


def test_a_patient_whose_import_recompute_is_under_way_says_so(clin_client, clinician, team):
    from scoring.models import PendingRecompute
    from scoring.services import recompute_later, recompute_pending

    marked = register(clinician, team, "MARKED", day=5)
    register(clinician, team, "CALM", day=5)
    # As a large import leaves it between its rows' commit and its patients' recompute.
    recompute_later([marked.pk])
    with CaptureQueriesContext(connection) as queries:
        html = clin_client.get(reverse("patients:ward")).content.decode()
    assert html.count("results updating") == 1
    marked_at = html.index(">MARKED<")
    row = html[marked_at : html.index("</tr>", marked_at)]
    assert "results updating" in row
    marked_queries = len(queries)
    recompute_pending()
    assert not PendingRecompute.objects.exists()
    with CaptureQueriesContext(connection) as queries:
        html = clin_client.get(reverse("patients:ward")).content.decode()
    assert "results updating" not in html
    assert len(queries) == marked_queries  # the mark is read in the ward's one query of values


def test_the_patient_page_says_its_results_are_updating_until_the_recompute_reaches_it(
    clin_client, clinician, team
):
    from scoring.services import recompute_later, recompute_pending

    marked = register(clinician, team, "MARKED", day=5)
    url = reverse("patients:detail", args=["MARKED"])
    assert "Results updating." not in clin_client.get(url).content.decode()
    recompute_later([marked.pk])  # as a large import leaves it between its rows and their recompute
    html = clin_client.get(url).content.decode()
    assert "Results updating." in html and 'role="status"' in html
    recompute_pending()
    assert "Results updating." not in clin_client.get(url).content.decode()
