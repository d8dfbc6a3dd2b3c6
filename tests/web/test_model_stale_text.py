"""A cut-point change leaves no stale label or rationale without a hint (issue 8 item 9)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from scoring import services
from scoring.models import ScoreModel
from tests.web.test_model_editor import edit_post

pytestmark = pytest.mark.django_db

APTT_RATIONALE = "1.5 × a typical upper reference limit of 37 s"


@pytest.fixture
def draft(hematologist) -> ScoreModel:
    return services.score_model_create_draft(
        user=hematologist,
        source=ScoreModel.objects.get(name="provisional-v0"),
        name="site-v1",
        provenance="edited",
    )


def test_a_new_cut_point_rewrites_an_untouched_label_and_flags_the_untouched_rationale(hema_client, draft):
    edit = reverse("scoring:model-edit", args=[draft.name])
    assert "A rationale does not" in hema_client.get(edit).content.decode()
    response = hema_client.post(edit, edit_post(draft, **{"aptt_d7-cut": "60", "reason": "local ULN 40 s"}))
    assert response.status_code == 302
    draft.refresh_from_db()
    aptt = {f["code"]: f for f in draft.spec["factors"]}["aptt_d7"]
    assert aptt["label"] == "APTT ≥ 60 s"
    assert aptt["rationale"].startswith(APTT_RATIONALE)  # the hematologist's words are not rewritten ...

    card = hema_client.get(reverse("scoring:model-detail", args=[draft.name])).content.decode()
    assert "Written for the earlier cut-point &gt;= 55.5 s of provisional-v0: review it." in card
    assert card.count("Written for the earlier cut-point") == 1  # ... but flagged, and only this one
    page = hema_client.get(edit).content.decode()
    assert "APTT: written for &gt;= 55.5 s" in page

    # A rewritten rationale clears the hint.
    hema_client.post(
        edit,
        edit_post(draft, **{"aptt_d7-rationale": "1.5 × our ULN of 40 s", "reason": "rationale for 60 s"}),
    )
    card = hema_client.get(reverse("scoring:model-detail", args=[draft.name])).content.decode()
    assert "Written for the earlier cut-point" not in card
    assert "1.5 × our ULN of 40 s" in card
