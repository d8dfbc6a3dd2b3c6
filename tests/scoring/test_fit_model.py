"""The fit_model command and the fit report page (SPEC 5, 8.3)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from crsrisk.accounts.models import AccessLog
from patients.demo import seed_demo
from patients.models import CareTeam, Patient
from scoring import services
from scoring.fitting.local import FitNotStorable, storable_spec
from scoring.models import ModelStatus, Provenance, ScoreModel
from scoring.rules.score import PROVISIONAL_V0, ModelSpec, model_spec_to_dict
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
    active = ScoreModel.objects.active()
    before = active_state()
    count = ScoreModel.objects.count()

    # SPEC 5's default base B, the smallest positive coefficient, is ferritin's ≈ 0.002 on the
    # demo cohort: thousands of points per factor, which the model editor refuses (at most 100).
    # The fit says why and what to do, exits non-zero and stores nothing; a dry run still
    # prints the whole report first.
    for dry_run in (["--dry-run"], []):
        err = StringIO()
        with pytest.raises(CommandError) as refused:
            call_command(
                "fit_model", *dry_run, "--bootstrap", "10", "--user", "demo-hematologist", stderr=err
            )
        message = str(refused.value)
        assert "the smallest positive coefficient (ferritin_d7, 0.002) as base B gives" in message
        assert "points for one factor" in message and "the model editor accepts at most 100" in message
        suggested = re.search(r"rerun with --base ([0-9.]+)", message)
        assert suggested, message
        assert "Nothing stored" in message
        assert "AUC integer_score" in err.getvalue() and "bands: intermediate from" in err.getvalue()
        assert ScoreModel.objects.count() == count
    assert 0.1 < float(suggested.group(1)) < 10  # the median positive coefficient, not 0.002

    dry = StringIO()
    call_command(
        "fit_model",
        "--dry-run",
        "--base",
        "1",
        "--bootstrap",
        "10",
        "--user",
        "demo-hematologist",
        stderr=dry,
    )
    assert "dry run: nothing stored." in dry.getvalue()
    assert ScoreModel.objects.count() == count

    err = StringIO()
    call_command(
        "fit_model",
        *("--name", "local-fit", "--base", "1", "--bootstrap", "20", "--user", "demo-hematologist"),
        stderr=err,
    )

    fitted = ScoreModel.objects.get(name="local-fit")
    assert fitted.status == ModelStatus.DRAFT
    assert fitted.provenance == Provenance.FITTED
    assert fitted.created_by.username == "demo-hematologist"
    assert fitted.history.get().history_user == fitted.created_by
    # Created by the editor's own draft service: derived from the active model, next version.
    assert fitted.derived_from == active
    assert fitted.version == active.version + 1
    assert active_state() == before
    # The model editor can edit what the fit stored.
    hematologist = fitted.created_by
    edited = services.score_model_update(
        user=hematologist,
        model=fitted,
        expected_revision=fitted.revision,
        reason="review the fitted draft",
        spec=fitted.spec,
    )
    assert edited.revision == fitted.revision + 1
    fitted.refresh_from_db()
    report = fitted.fit_report
    assert report["design"] == "as_published"
    assert report["fitted_by"] == "demo-hematologist"
    assert report["cohort"]["considered"] == 125
    assert report["cohort"]["analysed"] + report["cohort"]["excluded"] == 125
    assert report["cohort"]["events"] >= 5
    assert report["performance"]["bootstrap"]["requested"] == 20
    assert report["points"]["base"] == 1.0 and report["points"]["base_given"] is True
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


def test_fit_model_refuses_a_cohort_without_enough_outcomes(hematologist):
    with pytest.raises(CommandError, match="not fitted: too few outcomes to fit"):
        call_command("fit_model", "--bootstrap", "10", "--user", hematologist.username, stderr=StringIO())
    assert not ScoreModel.objects.filter(provenance=Provenance.FITTED).exists()


def test_fit_model_refuses_bad_arguments_before_fitting(clinician, hematologist):
    user = ("--user", hematologist.username)
    with pytest.raises(CommandError, match="the following arguments are required: --user"):
        call_command("fit_model", "--bootstrap", "10", stderr=StringIO())
    with pytest.raises(CommandError, match="--user 'nobody': no such user"):
        call_command("fit_model", "--user", "nobody", stderr=StringIO())
    with pytest.raises(CommandError, match="fitting is a hematologist action"):
        call_command("fit_model", "--user", clinician.username, stderr=StringIO())
    with pytest.raises(CommandError, match="at least 10 resamples"):
        call_command("fit_model", "--bootstrap", "3", *user, stderr=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("fit_model", "--name", "provisional-v0", *user, stderr=StringIO())
    with pytest.raises(CommandError, match="use 1–64 letters"):
        call_command("fit_model", "--name", "a/b", *user, stderr=StringIO())
    assert not ScoreModel.objects.filter(provenance=Provenance.FITTED).exists()


def _fitted(points: list[int], *, intermediate_from: int, high_from: int) -> ModelSpec:
    factors = tuple(replace(f, points=p) for f, p in zip(PROVISIONAL_V0.factors, points, strict=True))
    return ModelSpec(name="fitted", factors=factors, intermediate_from=intermediate_from, high_from=high_from)


def _report(spec: ModelSpec, coefs: list[float], *, base: float, base_given: bool, high_found: bool) -> dict:
    return {
        "points": {
            "base": base,
            "base_given": base_given,
            "factors": [
                {"code": f.code, "coef": c, "points": f.points}
                for f, c in zip(spec.factors, coefs, strict=True)
            ],
        },
        "bands": {
            "intermediate_from": spec.intermediate_from,
            "high_from": spec.high_from,
            "high_found": high_found,
        },
    }


def test_a_fitted_draft_whose_high_band_no_patient_can_reach_is_refused(hematologist):
    # No Youden cut above the intermediate one: the engine proposes high from low cut + 1 = 8,
    # above the 7 points the factors add up to. Such a high band would silence every
    # day-7-high alert, so neither the editor's draft service nor the fit stores it.
    spec = _fitted([1, 1, 1, 1, 1, 1, 1], intermediate_from=7, high_from=8)
    with pytest.raises(ValidationError) as refused:
        services.score_model_create_draft(
            user=hematologist,
            source=ScoreModel.objects.active(),
            name="fitted-unreachable",
            provenance=Provenance.FITTED,
            spec=model_spec_to_dict(spec),
            fit_report={"format": 1},
        )
    assert "no patient could reach it" in " ".join(refused.value.messages)
    assert not ScoreModel.objects.filter(name="fitted-unreachable").exists()

    report = _report(spec, [0.5] * 7, base=0.5, base_given=False, high_found=False)
    with pytest.raises(FitNotStorable) as explained:
        storable_spec(spec, report)
    message = str(explained.value)
    assert "the proposed high band starts at 8 points" in message
    assert "add up to 7 at most" in message and "no patient could reach it" in message
    assert "Nothing stored" in message


def test_fitted_points_above_the_editors_maximum_are_explained_with_a_base_to_try():
    coefs = [2.0, -0.1, 0.9, 1.3, 0.002, 2.3, 3.4]
    points = [1000, 0, 450, 650, 1, 1150, 1700]
    spec = _fitted(points, intermediate_from=1000, high_from=2000)
    report = _report(spec, coefs, base=0.002, base_given=False, high_found=True)
    with pytest.raises(FitNotStorable) as explained:
        storable_spec(spec, report)
    message = str(explained.value)
    assert message.startswith(
        "the smallest positive coefficient (ferritin_d7, 0.002) as base B gives 1700 points for one "
        "factor (aptt_d7); the model editor accepts at most 100"
    )
    # The median positive coefficient of 0.002, 0.9, 1.3, 2.0, 2.3, 3.4 is 1.65.
    assert "rerun with --base 1.7," in message

    given = _report(spec, coefs, base=0.002, base_given=True, high_found=True)
    with pytest.raises(FitNotStorable, match=r"^the base B = 0\.002 \(--base\) gives 1700 points"):
        storable_spec(spec, given)

    fine = _fitted([1, 0, 1, 1, 0, 1, 2], intermediate_from=2, high_from=4)
    assert storable_spec(fine, given)["high_from"] == 4


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
