"""English and Simplified Chinese: a language switch, translated UI strings, compiled catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from scoring.selectors import CAVEAT_MSGIDS, RULE_CAVEATS

PO = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
OWN_SOURCES = ("templates/patients/", "templates/scoring/", "templates/base.html", "patients/", "scoring/")


def test_caveat_msgids_are_the_rules_texts_verbatim():
    assert CAVEAT_MSGIDS == RULE_CAVEATS


def test_compiled_catalogue_is_committed_next_to_the_po_file():
    assert PO.exists() and MO.exists()
    assert MO.stat().st_size > 10_000


def _entries() -> list[tuple[str, str, str]]:
    out = []
    for block in PO.read_text(encoding="utf-8").split("\n\n"):
        if block.startswith("#~"):
            continue
        m = re.search(r'^msgid ((?:".*"\n)+)msgstr ((?:".*"\n?)+)', block + "\n", re.M)
        if not m:
            continue
        msgid = "".join(re.findall(r'"(.*)"', m.group(1)))
        msgstr = "".join(re.findall(r'"(.*)"', m.group(2)))
        out.append((block, msgid, msgstr))
    return out


def test_every_ui_string_of_the_ward_app_has_a_chinese_translation():
    untranslated = [
        msgid
        for block, msgid, msgstr in _entries()
        if msgid and not msgstr and any(f" {src}" in block or f":{src}" in block for src in OWN_SOURCES)
    ]
    assert not untranslated, untranslated


@pytest.mark.django_db
def test_language_switch_sets_chinese_and_pages_render_in_chinese(clin_client, ward_patient):
    response = clin_client.post(
        reverse("set_language"), {"language": "zh-hans", "next": reverse("patients:ward")}
    )
    assert response.status_code == 302
    html = clin_client.get(reverse("patients:ward")).content.decode()
    assert 'lang="zh-hans"' in html
    assert "病区列表" in html
    html = clin_client.get(reverse("patients:detail", args=[ward_patient.mrn])).content.decode()
    assert "趋势：该模型仅在第 7 天经过验证" in html
    assert "持续的 B 细胞缺失不能排除复发" in html
    html = clin_client.get(reverse("patients:lab-entry", args=[ward_patient.mrn])).content.decode()
    assert "录入一组检验" in html
    clin_client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "Ward list" in clin_client.get(reverse("patients:ward")).content.decode()
