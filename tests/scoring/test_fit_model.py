"""The fit_model command and the fit report page (SPEC 5, 8.3)."""

from __future__ import annotations

import json
from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from crsrisk.accounts.models import AccessLog
from patients.demo import seed_demo
from patients.models import CareTeam, Patient
from scoring.models import ModelStatus, Provenance, ScoreModel
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

TODAY = date(2026, 1, 15)
PASSWORD = "demo-password-2025!"


def active_state() -> tuple[str, dict]:
    model = ScoreModel.objects.active()
    return model.name, model.spec


def test_fit_model_on_the_demo_cohort_stores_a_draft_with_its_report_and_leaves_the_active_model(client):
    """One seeded cohort (slow to build) for the dry run, the fit and the report page."""
    seed_demo(today=TODAY, password=PASSWORD)
    before = active_state()
    count = ScoreModel.objects.count()
    dry = StringIO()
    call_command("fit_model", "--dry-run", "--bootstrap", "10", stderr=dry)
    assert "dry run: nothing stored." in dry.getvalue()
    assert ScoreModel.objects.count() == count

    err = StringIO()
    call_command(
        "fit_model", "--name", "local-fit", "--bootstrap", "20", "--user", "demo-hematologist", stderr=err
    )

    fitted = ScoreModel.objects.get(name="local-fit")
    assert fitted.status == ModelStatus.DRAFT
    assert fitted.provenance == Provenance.FITTED
    assert fitted.created_by.username == "demo-hematologist"
    assert fitted.history.get().history_user == fitted.created_by
    assert active_state() == before
    report = fitted.fit_report
    assert report["design"] == "as_published"
    assert report["fitted_by"] == "demo-hematologist"
    assert report["cohort"]["considered"] == 125
    assert report["cohort"]["analysed"] + report["cohort"]["excluded"] == 125
    assert report["cohort"]["events"] >= 5
    assert report["performance"]["bootstrap"]["requested"] == 20
    # The stored model is the fitted points and bands on the seven prespecified factors.
    spec = fitted.to_spec()
    assert [f.points for f in spec.factors] == [row["points"] for row in report["points"]["factors"]]
    assert (spec.intermediate_from, spec.high_from) == (
        report["bands"]["intermediate_from"],
        report["bands"]["high_from"],
    )
    assert "stored draft model local-fit" in err.getvalue()
    # The person who ran the fit is told which patients were excluded, and why.
    excluded_lines = [line for line in err.getvalue().splitlines() if line.startswith("excluded DEMO")]
    assert len(excluded_lines) == report["cohort"]["excluded"]
    assert "bootstrap 20/20" in err.getvalue()

    # The hematologist reads the report, linked from the model card.
    client.force_login(fitted.created_by)
    card = client.get(fitted.get_absolute_url())
    report_url = reverse("scoring:model-report", kwargs={"name": "local-fit"})
    assert report_url in card.content.decode()
    page = client.get(report_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "inflates the AUC" in html
    assert "Riley et al." in html
    assert 'id="chart-roc-data"' in html and 'id="chart-calibration-data"' in html
    assert "<script>" not in html  # charts are JSON drawn by static/js/charts.js
    assert f"{report['cohort']['analysed']} patients" in html
    assert f"Excluded patients: {report['cohort']['excluded']}" in html

    # The report is site-wide; a hematologist of another care team reads it too, so it names no
    # patient: exclusions are counted by reason (SPEC 7), and the stored report holds no MRN.
    mrns = list(Patient.objects.values_list("mrn", flat=True))
    assert len(mrns) == 125
    assert not any(mrn in json.dumps(report) for mrn in mrns)
    by_reason = {row["code"]: row["n"] for row in report["cohort"]["exclusion_counts"]}
    assert by_reason and all(n >= 1 for n in by_reason.values())
    assert sum(by_reason.values()) >= report["cohort"]["excluded"]
    outsider = make_user("hema-elsewhere", "hematologist", (CareTeam.objects.create(name="Other ward"),))
    client.force_login(outsider)
    access_log_before = AccessLog.objects.count()
    html = client.get(report_url).content.decode()
    assert f"Excluded patients: {report['cohort']['excluded']}" in html
    assert not [mrn for mrn in mrns if mrn in html]
    assert AccessLog.objects.count() == access_log_before  # no patient's record was shown

    # A report stored before this fix listed each excluded MRN: the page counts them instead.
    legacy = dict(report, cohort=dict(report["cohort"]))
    del legacy["cohort"]["exclusion_counts"]
    legacy["cohort"]["exclusions"] = [
        {"mrn": mrns[0], "reasons": [{"code": "no_infusion"}]},
        {"mrn": mrns[1], "reasons": [{"code": "observation_days_missing", "days": "3–5", "n": 3}]},
        {"mrn": mrns[2], "reasons": [{"code": "observation_days_missing", "days": "9", "n": 1}]},
    ]
    ScoreModel.objects.filter(pk=fitted.pk).update(fit_report=legacy)
    html = client.get(report_url).content.decode()
    assert not [mrn for mrn in mrns if mrn in html]
    assert '<th scope="row">no infusion recorded</th><td>1</td>' in html
    assert '<th scope="row">some observation days not recorded</th><td>2</td>' in html


def test_fit_model_refuses_a_cohort_without_enough_outcomes():
    with pytest.raises(CommandError, match="not fitted: too few outcomes to fit"):
        call_command("fit_model", "--bootstrap", "10", stderr=StringIO())
    assert not ScoreModel.objects.filter(provenance=Provenance.FITTED).exists()


def test_fit_model_refuses_bad_arguments_before_fitting(clinician):
    with pytest.raises(CommandError, match="--user 'nobody': no such user"):
        call_command("fit_model", "--user", "nobody", stderr=StringIO())
    with pytest.raises(CommandError, match="fitting is a hematologist action"):
        call_command("fit_model", "--user", clinician.username, stderr=StringIO())
    with pytest.raises(CommandError, match="at least 10 resamples"):
        call_command("fit_model", "--bootstrap", "3", stderr=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("fit_model", "--name", "provisional-v0", stderr=StringIO())
    with pytest.raises(CommandError, match="use 1–64 letters"):
        call_command("fit_model", "--name", "a/b", stderr=StringIO())
    assert not ScoreModel.objects.filter(provenance=Provenance.FITTED).exists()


def test_report_page_of_a_model_without_a_fit_says_so(client, hematologist):
    client.force_login(hematologist)
    page = client.get(reverse("scoring:model-report", kwargs={"name": "provisional-v0"}))
    assert page.status_code == 200
    assert "has no fit report" in page.content.decode()


def test_report_page_is_for_hematologists_only(client, clinician):
    client.force_login(clinician)
    page = client.get(reverse("scoring:model-report", kwargs={"name": "provisional-v0"}))
    assert page.status_code == 403


def test_report_page_of_an_unreadable_fit_report_says_so_instead_of_failing(client, hematologist):
    model = ScoreModel.objects.get(name="provisional-v0")
    ScoreModel.objects.filter(pk=model.pk).update(fit_report={"something": "else"})
    client.force_login(hematologist)
    page = client.get(reverse("scoring:model-report", kwargs={"name": "provisional-v0"}))
    assert page.status_code == 200
    assert "format this page cannot read" in page.content.decode()
