"""The patient page explains its results: breakdown, flags, caveats, charts (SPEC 3.2–3.6)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from patients import services
from patients.models import GradeOverride
from scoring import charts
from scoring.rules.score import PROVISIONAL_V0
from tests.web.conftest import at, register

pytestmark = pytest.mark.django_db


def page(client, patient) -> str:
    return client.get(reverse("patients:detail", args=[patient.mrn])).content.decode()


def test_breakdown_lists_missing_inputs_and_never_shows_them_as_zero(clin_client, clinician, team):
    p = register(clinician, team, "TL1", day=9, baseline_mrd_pct=20, post_ld_mrd_pct=10)
    services.lab_record(user=clinician, patient=p, analyte="crp", value="30", collected_at=at(p, 7))
    html = page(clin_client, p)
    assert "2 points (up to 6 with the missing inputs)" in html
    assert "The band is a lower bound" in html
    assert "Missing inputs" in html and "ANC, Ferritin, IL-6, APTT" in html
    assert "could add 1" in html
    assert "not the published weights or cut-points" in html
    assert "trend: the model is validated on day 7 only" in html


def test_before_day_6_the_day7_score_is_not_presented_as_a_prediction(clin_client, clinician, team):
    early = register(clinician, team, "TL0", day=4, baseline_mrd_pct=20, post_ld_mrd_pct=10)
    html = page(clin_client, early)
    assert "Day-7 score: not reached yet" in html and "Day-7 score (the prediction)" not in html
    later = register(clinician, team, "TL9", day=9, baseline_mrd_pct=20)
    assert "Day-7 score (the prediction)" in page(clin_client, later)


def test_day6_fallback_and_post_tocilizumab_flags_are_shown(clin_client, clinician, team):
    p = register(clinician, team, "TL2", day=9)
    services.observation_record(
        user=clinician,
        patient=p,
        date=p.infusion.infusion_date + timedelta(days=5),
        tmax_c="38.8",
        tocilizumab=True,
    )
    services.lab_record(user=clinician, patient=p, analyte="il6", value="900", collected_at=at(p, 6))
    html = page(clin_client, p)
    assert "from day 6 (no day-7 value)" in html
    assert "drawn after tocilizumab" in html


def test_review_days_and_bcell_caveats_are_shown(clin_client, hematologist, team):
    p = register(hematologist, team, "TL3", day=50)
    services.observation_record(
        user=hematologist,
        patient=p,
        date=p.infusion.infusion_date + timedelta(days=1),
        tmax_c="37.0",
        hypotension="multiple_vasopressors",
    )
    for d, v in ((7, "0"), (35, "4"), (42, "6")):
        services.lab_record(user=hematologist, patient=p, analyte="bcell", value=v, collected_at=at(p, d))
    services.event_record(
        user=hematologist, patient=p, kind="cr", date=p.infusion.infusion_date + timedelta(days=28)
    )
    html = page(clin_client, p)
    assert "not graded as CRS. Check for masked fever" in html
    assert "early regeneration" in html
    assert "This is not a treatment recommendation." in html
    # The aplasia caveat contradicts an early regeneration: it is not shown beside it.
    assert "CD19-negative relapse gives no B-cell signal" not in html


def test_override_can_be_removed_by_a_hematologist(hema_client, hematologist, ward_patient):
    d = ward_patient.infusion.infusion_date + timedelta(days=1)
    services.observation_record(user=hematologist, patient=ward_patient, date=d, tmax_c="39.0")
    o = services.grade_override_set(
        user=hematologist, patient=ward_patient, date=d, grade=0, reason="infection"
    )
    url = reverse("patients:override-void", args=[ward_patient.mrn, o.pk])
    assert hema_client.post(url, {"reason": "", "version": o.version}).status_code == 200
    stale = hema_client.post(url, {"reason": "entered on the wrong day", "version": o.version + 7})
    assert stale.status_code == 200 and GradeOverride.objects.active().exists()
    assert "changed by someone else" in stale.content.decode()
    done = hema_client.post(url, {"reason": "entered on the wrong day", "version": o.version})
    assert done.status_code == 302
    assert not GradeOverride.objects.active().exists()


def test_charts_carry_cut_points_of_the_active_model_and_the_day_w_line(clinician, team):
    p = register(clinician, team, "TL4", day=10)
    services.lab_record(user=clinician, patient=p, analyte="crp", value="<5", collected_at=at(p, 7))
    services.lab_record(user=clinician, patient=p, analyte="bcell", value="3", collected_at=at(p, 8))
    from scoring.services import site_zone

    figures = charts.timeline_figures(
        rows=[],
        summary=None,
        model=PROVISIONAL_V0,
        labs=list(p.labs.all()),
        tz=site_zone(),
        infusion_date=p.infusion.infusion_date,
        window_days=45,
        threshold=0,
    )
    by_id = {f["id"]: f["figure"] for f in figures}
    crp = by_id["chart-lab-crp"]
    assert any(s.get("y0") == 200.0 for s in crp["layout"]["shapes"])
    assert crp["data"][0]["marker"]["symbol"] == ["triangle-down"]
    bcell = by_id["chart-bcell"]
    assert any(s.get("x0") == 45 for s in bcell["layout"]["shapes"])
    assert bcell["layout"]["xaxis"]["range"][1] > 45


def test_a_patient_without_observations_is_not_graded_rather_than_grade_0(clin_client, ward_patient):
    html = clin_client.get(reverse("patients:detail", args=[ward_patient.mrn])).content.decode()
    assert "Not graded yet: no bedside observation is recorded." in html
    assert "Max grade so far: 0" not in html


def test_the_day7_star_is_drawn_only_once_a_day7_lab_exists(clinician, team):
    from scoring.models import DailyAssessment, PatientSummary

    p = register(clinician, team, "TL5", day=3, baseline_mrd_pct=12)

    def star(patient) -> list:
        summary = PatientSummary.objects.get(patient=patient)
        rows = list(DailyAssessment.objects.filter(patient=patient, model=summary.model))
        figure = charts.running_score_figure(rows, PROVISIONAL_V0, summary)
        return [t for t in figure["data"] if t.get("marker", {}).get("symbol") == "star"]

    assert star(p) == []  # only the MRD inputs: no day-7 result to mark yet
    q = register(clinician, team, "TL6", day=8, baseline_mrd_pct=12)
    services.lab_record(user=clinician, patient=q, analyte="crp", value="250", collected_at=at(q, 7))
    (marker,) = star(q)
    assert marker["x"] == [7]


# The grade explains itself, and the page says only what is true (issue 8, items 5 and 6).


def test_the_observation_table_and_the_chart_hover_give_each_grades_reasons(clin_client, clinician, team):
    p = register(clinician, team, "TLR", day=9)
    d0 = p.infusion.infusion_date
    services.observation_record(
        user=clinician, patient=p, date=d0 + timedelta(days=1), tmax_c="38.6", antipyretic=True
    )
    services.observation_record(
        user=clinician, patient=p, date=d0 + timedelta(days=2), tmax_c="37.1", oxygen="low_flow"
    )
    services.observation_record(
        user=clinician, patient=p, date=d0 + timedelta(days=3), tmax_c="39.0", hypotension="one_vasopressor"
    )
    html = page(clin_client, p)
    assert "ASTCT grade and why" in html
    assert "fever 38.6 °C" in html
    assert "fever carried from day +1 (antipyretic); low-flow O₂ ≤ 6 L/min" in html
    assert "fever 39.0 °C; one vasopressor" in html
    tl_figures = clin_client.get(reverse("patients:detail", args=[p.mrn])).context["figures"]
    crs = next(f["figure"] for f in tl_figures if f["id"] == "chart-crs")
    bars = crs["data"][0]
    assert bars["x"] == [1, 2, 3] and bars["y"] == [1, 2, 3]
    assert "one vasopressor" in bars["hovertext"][2]
    assert crs["layout"]["yaxis"]["range"] == [0, 5]
    therapy = [t for t in crs["data"] if t["name"] == "Antipyretic"]
    assert therapy and therapy[0]["yaxis"] == "y2" and therapy[0]["x"] == [1]


def test_the_aplasia_caveat_is_hidden_beside_an_early_regeneration(
    clin_client, clinician, hematologist, team
):
    from patients.models import SiteParameters

    params = SiteParameters.load()
    services.site_parameters_update(
        user=hematologist, expected_version=params.version, reason="test", confirm_regeneration=False
    )
    p = register(clinician, team, "TLB", day=40)
    html = page(clin_client, p)
    assert "Continuing B-cell aplasia does not rule out relapse" in html
    services.lab_record(user=clinician, patient=p, analyte="bcell", value="0", collected_at=at(p, 7))
    services.lab_record(user=clinician, patient=p, analyte="bcell", value="5", collected_at=at(p, 30))
    html = page(clin_client, p)
    assert "early regeneration" in html
    assert "Continuing B-cell aplasia does not rule out relapse" not in html


def test_the_running_score_says_which_day_it_is_and_that_it_is_the_last_with_data(
    clin_client, clinician, team
):
    p = register(clinician, team, "TLD", day=12)
    html = page(clin_client, p)
    assert "Running score today" not in html
    assert "Running score on the last day with data" in html
    d0 = p.infusion.infusion_date
    assert f"Day 0 ({d0:%Y-%m-%d}), the last day with a lab or an observation; today is day +12." in html
    services.lab_record(user=clinician, patient=p, analyte="crp", value="30", collected_at=at(p, 12))
    html = page(clin_client, p)
    assert f"Day +12 ({d0 + timedelta(days=12):%Y-%m-%d}): today." in html
