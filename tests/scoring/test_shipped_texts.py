"""The shipped model's description and rationales are shown translated (issue 8 item 9)."""

from __future__ import annotations

import importlib

import polib
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from scoring.shipped import SHIPPED_TEXTS, shipped_text

MIGRATION = importlib.import_module("scoring.migrations.0002_provisional_v0")


def _migration_texts() -> set[str]:
    spec = MIGRATION.PROVISIONAL_V0
    return {MIGRATION.DESCRIPTION} | {f["rationale"] for f in spec["factors"]}


def test_every_shipped_text_of_the_migration_is_marked_and_translated() -> None:
    assert _migration_texts() == set(SHIPPED_TEXTS)
    catalogue = polib.pofile(str(settings.BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    translated = {e.msgid for e in catalogue if e.translated() and "fuzzy" not in e.flags}
    assert set(SHIPPED_TEXTS) <= translated


def test_a_typed_text_stays_as_typed() -> None:
    assert shipped_text("our local APTT limit is 40 s") == "our local APTT limit is 40 s"


@pytest.mark.django_db
def test_the_model_card_shows_the_shipped_texts_in_chinese(client: Client, hematologist) -> None:
    client.force_login(hematologist)
    url = reverse("scoring:model-detail", args=["provisional-v0"])
    english = client.get(url).content.decode()
    assert "CTCAE grade-4 neutropenia" in english
    assert "Provisional model shipped with CRS Risk." in english
    chinese = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "CTCAE grade-4 neutropenia" not in chinese
    assert "Provisional model shipped with CRS Risk." not in chinese
    assert "CTCAE 4 级中性粒细胞减少" in chinese
