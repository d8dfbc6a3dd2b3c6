"""The score-model editor pages: new version, edit a draft, retire, what-if (SPEC 5, 8.1, 9)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from patients import services as patient_services
from scoring import services
from scoring.models import ModelStatus, ScoreModel
from tests.web.conftest import at, register

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(hematologist) -> ScoreModel:
    return services.score_model_create_draft(
        user=hematologist,
        source=ScoreModel.objects.get(name="provisional-v0"),
        name="site-v1",
        provenance="edited",
    )


def edit_post(model: ScoreModel, **overrides: str) -> dict[str, str]:
    """The editor's POST data as the page would send it unchanged, with ``overrides``."""
    spec = model.spec
    data = {
        "version": str(model.revision),
        "provenance": model.provenance,
        "citation": model.citation,
        "description": model.description,
        "intermediate_from": str(spec["intermediate_from"]),
        "high_from": str(spec["high_from"]),
        "reason": "local conventions",
    }
    for f in spec["factors"]:
        for field in ("comparison", "cut", "points", "label", "rationale"):
            data[f"{f['code']}-{field}"] = str(f[field])
    data.update(overrides)
    return data


def test_new_version_from_the_model_card_creates_a_draft_edited_from_its_source(hema_client):
    card = hema_client.get(reverse("scoring:model-detail", args=["provisional-v0"])).content.decode()
    assert reverse("scoring:model-new", args=["provisional-v0"]) in card
    url = reverse("scoring:model-new", args=["provisional-v0"])
    response = hema_client.post(
        url, {"name": "site-v1", "provenance": "edited", "citation": "", "description": "APTT local"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("scoring:model-edit", args=["site-v1"])
    model = ScoreModel.objects.get(name="site-v1")
    assert (model.status, model.provenance, model.description) == ("draft", "edited", "APTT local")
    card = hema_client.get(reverse("scoring:model-detail", args=["site-v1"])).content.decode()
    assert "edited from provisional-v0" in card
    assert "not the published weights" in card


def test_published_without_citation_shows_the_error_and_keeps_the_typed_name(hema_client):
    url = reverse("scoring:model-new", args=["provisional-v0"])
    response = hema_client.post(
        url, {"name": "ke-2025-typed", "provenance": "published", "citation": "", "description": ""}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_citation_error"' in html
    assert 'value="ke-2025-typed"' in html
    assert not ScoreModel.objects.filter(name="ke-2025-typed").exists()


def test_duplicate_name_is_shown_next_to_the_name(hema_client, draft):
    url = reverse("scoring:model-new", args=["provisional-v0"])
    response = hema_client.post(url, {"name": "site-v1", "provenance": "edited"})
    assert response.status_code == 200
    assert 'id="id_name_error"' in response.content.decode()
    assert ScoreModel.objects.filter(name="site-v1").count() == 1


def test_editor_shows_one_row_per_factor_with_unit(hema_client, draft):
    html = hema_client.get(reverse("scoring:model-edit", args=["site-v1"])).content.decode()
    for code in (f["code"] for f in draft.spec["factors"]):
        assert f'name="{code}-cut"' in html
    assert "mg/L" in html and 'value="55.5"' in html


def test_bad_cut_point_is_refused_next_to_its_field_with_typed_values_kept(hema_client, draft):
    url = reverse("scoring:model-edit", args=["site-v1"])
    response = hema_client.post(url, edit_post(draft, **{"crp_d7-cut": "2OO", "aptt_d7-cut": "60"}))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_crp_d7-cut_error"' in html
    assert 'value="2OO"' in html and 'value="60"' in html
    draft.refresh_from_db()
    assert {f["code"]: f["cut"] for f in draft.spec["factors"]}["aptt_d7"] == "55.5"
    assert draft.history.count() == 1


@pytest.mark.parametrize("typed", ["NaN", "Infinity", "-inf", "1e400"])
def test_non_finite_mrd_cut_point_is_refused_not_a_500(hema_client, draft, typed):
    # The MRD unit is "%": it must not be read as a format character in the error message.
    url = reverse("scoring:model-edit", args=["site-v1"])
    response = hema_client.post(url, edit_post(draft, **{"baseline_mrd-cut": typed}))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_baseline_mrd-cut_error"' in html
    assert "%%" not in html
    if typed == "1e400":  # an exponent: forms ask for the number written out
        assert "has an exponent, which is not accepted here" in html
    else:
        assert "is not a number" in html
    assert "with a decimal point, such as 12.5" in html  # what is accepted
    assert f'value="{typed}"' in html
    draft.refresh_from_db()
    assert draft.history.count() == 1


def test_empty_mrd_cut_point_says_what_is_missing(hema_client, draft):
    url = reverse("scoring:model-edit", args=["site-v1"])
    html = hema_client.post(url, edit_post(draft, **{"baseline_mrd-cut": ""})).content.decode()
    assert "Enter a cut-point in the unit shown." in html and "%%" not in html


def test_service_refusal_lands_on_the_band_field(hema_client, draft):
    url = reverse("scoring:model-edit", args=["site-v1"])
    response = hema_client.post(url, edit_post(draft, intermediate_from="3", high_from="9"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_high_from_error"' in html
    assert "no patient could reach it" in html
    draft.refresh_from_db()
    assert draft.spec["high_from"] == 4


def test_valid_edit_is_stored_with_reason_and_shown_on_the_card(hema_client, hematologist, draft):
    url = reverse("scoring:model-edit", args=["site-v1"])
    response = hema_client.post(
        url, edit_post(draft, **{"aptt_d7-cut": "60.0", "aptt_d7-label": "APTT ≥ 60 s", "reason": "ULN 40 s"})
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert {f["code"]: f["cut"] for f in draft.spec["factors"]}["aptt_d7"] == "60"
    latest = draft.history.order_by("-history_id").first()
    assert (latest.history_user, latest.history_change_reason) == (hematologist, "ULN 40 s")
    card = hema_client.get(reverse("scoring:model-detail", args=["site-v1"])).content.decode()
    assert "&gt;= 60 s" in card and "ULN 40 s" in card


def test_stale_editor_post_is_refused_as_a_conflict(hema_client, hematologist, draft):
    stale = edit_post(draft, **{"crp_d7-cut": "150"})
    services.score_model_update(
        user=hematologist, model=draft, expected_revision=draft.revision, reason="other", description="x"
    )
    response = hema_client.post(reverse("scoring:model-edit", args=["site-v1"]), stale)
    assert response.status_code == 200
    assert "changed by someone else" in response.content.decode()
    draft.refresh_from_db()
    assert {f["code"]: f["cut"] for f in draft.spec["factors"]}["crp_d7"] == "200"


def test_active_model_editor_redirects_to_its_card_and_changes_nothing(hema_client):
    active = ScoreModel.objects.get(name="provisional-v0")
    url = reverse("scoring:model-edit", args=["provisional-v0"])
    response = hema_client.post(url, edit_post(active, **{"crp_d7-cut": "1"}))
    assert response.status_code == 302
    active.refresh_from_db()
    assert {f["code"]: f["cut"] for f in active.spec["factors"]}["crp_d7"] == "200"


def test_retire_needs_a_reason_then_retires(hema_client, draft):
    url = reverse("scoring:model-retire", args=["site-v1"])
    response = hema_client.post(url, {"version": draft.revision, "reason": ""})
    assert response.status_code == 200
    assert 'id="id_reason_error"' in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == ModelStatus.DRAFT
    response = hema_client.post(url, {"version": draft.revision, "reason": "superseded"})
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == ModelStatus.RETIRED


def test_clinician_cannot_open_the_editor(clin_client, draft):
    assert clin_client.get(reverse("scoring:model-edit", args=["site-v1"])).status_code == 403
    assert clin_client.post(reverse("scoring:model-new", args=["site-v1"]), {}).status_code == 403


def test_what_if_counts_band_changes_of_patients_with_a_day7_result(
    hema_client, hematologist, clinician, team, draft
):
    p = register(clinician, team, "W7", day=9, baseline_mrd_pct=8, post_ld_mrd_pct=6)
    patient_services.lab_record(
        user=clinician, patient=p, analyte="crp", value="120", unit="mg/L", collected_at=at(p, 7)
    )
    register(clinician, team, "W2", day=2)  # no day-7 result: not counted
    # Under provisional-v0: 2 MRD points → intermediate. Lower the CRP cut: 3 points, high from 3.
    services.score_model_update(
        user=hematologist,
        model=draft,
        expected_revision=draft.revision,
        reason="what-if",
        spec={
            **draft.spec,
            "high_from": 3,
            "factors": [{**f, "cut": "100"} if f["code"] == "crp_d7" else f for f in draft.spec["factors"]],
        },
    )
    response = hema_client.get(reverse("scoring:model-detail", args=["site-v1"]))
    what_if = response.context["what_if"]
    assert what_if.patients == 1
    assert (what_if.changed, what_if.higher, what_if.lower) == (1, 1, 0)
    assert dict(what_if.matrix)["intermediate"] == [0, 0, 1]


def test_only_a_published_version_with_citation_shows_its_citation_and_no_edited_caveat(hema_client):
    url = reverse("scoring:model-new", args=["provisional-v0"])
    citation = "Ke et al., Curr Med Sci 2025, doi:10.1007/s11596-025-00109-0"
    response = hema_client.post(
        url, {"name": "ke-2025", "provenance": "published", "citation": citation, "description": ""}
    )
    assert response.status_code == 302
    card = hema_client.get(reverse("scoring:model-detail", args=["ke-2025"])).content.decode()
    assert citation in card
    assert "Entered by a hematologist from the publication cited above" in card
    assert "edited from provisional-v0" not in card


def test_after_activating_an_edited_model_the_ward_and_timeline_still_say_it_is_not_the_published_one(
    hematologist, hema_client, draft, team
):
    patient = register(hematologist, team, "ED-1", day=8)
    services.score_model_activate(model=draft, user=hematologist, expected_revision=draft.revision)
    caveat = "not the published ones of Ke et al. 2025"
    assert caveat in hema_client.get(reverse("patients:ward")).content.decode()
    assert caveat in hema_client.get(reverse("patients:detail", args=[patient.mrn])).content.decode()
