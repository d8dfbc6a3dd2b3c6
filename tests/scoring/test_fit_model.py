"""The fit_model command and the fit report page (SPEC 5, 8.3)."""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from patients.demo import seed_demo
from scoring.models import ModelStatus, Provenance, ScoreModel

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
    assert all(x["reasons"] for x in report["cohort"]["exclusions"])
    assert report["performance"]["bootstrap"]["requested"] == 20
    # The stored model is the fitted points and bands on the seven prespecified factors.
    spec = fitted.to_spec()
    assert [f.points for f in spec.factors] == [row["points"] for row in report["points"]["factors"]]
    assert (spec.intermediate_from, spec.high_from) == (
        report["bands"]["intermediate_from"],
        report["bands"]["high_from"],
    )
    assert "stored draft model local-fit" in err.getvalue()
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
