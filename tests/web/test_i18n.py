"""English and Simplified Chinese: a language switch, translated UI strings, compiled catalogue."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.urls import reverse

PO = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
OWN_SOURCES = ("templates/", "patients/", "scoring/", "crsrisk/")


def test_compiled_catalogue_is_committed_next_to_the_po_file():
    assert PO.exists() and MO.exists()
    assert MO.stat().st_size > 10_000


def _own(entry: polib.POEntry) -> bool:
    return any(path.startswith(OWN_SOURCES) for path, _line in entry.occurrences)


def test_every_ui_string_of_the_ward_app_has_a_chinese_translation():
    catalogue = polib.pofile(str(PO))
    # compilemessages leaves fuzzy entries out, so they show in English: count them too.
    untranslated = [
        entry.msgid
        for entry in catalogue
        if not entry.obsolete and _own(entry) and (not entry.translated() or entry.fuzzy)
    ]
    assert not untranslated, untranslated


def test_translations_keep_their_placeholders():
    catalogue = polib.pofile(str(PO))
    placeholder = re.compile(r"%\((\w+)\)[sd]")
    broken = []
    for entry in catalogue.translated_entries():
        wanted = set(placeholder.findall(entry.msgid_plural or entry.msgid))
        texts = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        broken += [entry.msgid for text in texts if set(placeholder.findall(text)) - wanted]
        if not entry.msgid_plural and set(placeholder.findall(entry.msgstr)) != wanted:
            broken.append(entry.msgid)
    assert not broken, broken


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


# --- messages from the services and the rules, shown in the reader's language --------------


def _chinese(client) -> None:
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})


@pytest.mark.django_db
def test_a_refused_unit_is_explained_in_chinese_next_to_its_field(clin_client, ward_patient):
    from tests.web.conftest import panel_post

    _chinese(clin_client)
    when = ward_patient.infusion.infusion_date + timedelta(days=2)
    response = clin_client.post(
        reverse("patients:lab-entry", args=[ward_patient.mrn]), panel_post(when, crp=("25", "mg/dl/x"))
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "不接受单位“mg/dl/x”" in html
    assert "not accepted" not in html
    assert not ward_patient.labs.exists()


@pytest.mark.django_db
def test_a_warn_range_value_asks_for_confirmation_in_chinese(clin_client, ward_patient):
    from tests.web.conftest import panel_post

    _chinese(clin_client)
    when = ward_patient.infusion.infusion_date + timedelta(days=2)
    html = clin_client.post(
        reverse("patients:lab-entry", args=[ward_patient.mrn]), panel_post(when, ferritin="150000")
    ).content.decode()
    assert "铁蛋白 150000 µg/L 超出常见范围 0–100000 µg/L" in html
    assert not ward_patient.labs.exists()


@pytest.mark.django_db
def test_a_stale_correction_is_refused_in_chinese(clin_client, clinician, ward_patient):
    from patients import services
    from tests.web.conftest import at

    lab = services.lab_record(
        user=clinician, patient=ward_patient, analyte="crp", value="20", collected_at=at(ward_patient, 1)
    )
    services.lab_correct(user=clinician, lab=lab, expected_version=1, value="22", reason="first")
    _chinese(clin_client)
    html = clin_client.post(
        reverse("patients:lab-correct", args=[ward_patient.mrn, lab.pk]),
        {
            "value": "25",
            "unit": "mg/L",
            "collected_date": at(ward_patient, 1).date().isoformat(),
            "collected_time": "08:00",
            "version": 1,
            "reason": "second",
        },
    ).content.decode()
    assert "自您打开后，此检验值已被他人修改（您编辑的是第 1 版，记录现为第 2 版）" in html


@pytest.mark.django_db
def test_stored_alert_reads_in_the_readers_language(clin_client, ward_patient):
    from patients import services
    from scoring.models import Alert

    services.observation_record(
        user=None,
        patient=ward_patient,
        date=ward_patient.infusion.infusion_date + timedelta(days=2),
        tmax_c="39.1",
        oxygen="high_flow",
    )
    alert = Alert.objects.get(patient=ward_patient, kind="severe_crs")
    assert alert.params == {"grade": 3, "overridden": 0}
    assert alert.message == "Severe CRS observed: ASTCT grade 3 on day +2."
    url = reverse("patients:detail", args=[ward_patient.mrn])
    assert alert.message in clin_client.get(url).content.decode()
    _chinese(clin_client)
    html = clin_client.get(url).content.decode()
    assert "已观察到重度 CRS：第 +2 天 ASTCT 3 级。" in html
    assert alert.message not in html


@pytest.mark.django_db
def test_ward_reminders_read_in_chinese(clin_client, ward_patient):
    _chinese(clin_client)
    html = clin_client.get(reverse("patients:ward")).content.decode()
    assert "今天（第 +3 天）尚未录入床旁观察。" in html


@pytest.mark.django_db
def test_a_labs_stored_warning_flags_stay_english_and_read_in_chinese(clin_client, clinician, ward_patient):
    from patients import services
    from tests.web.conftest import at

    services.lab_record(
        user=clinician,
        patient=ward_patient,
        analyte="ferritin",
        value="5000",
        collected_at=at(ward_patient, 1),
    )
    lab = services.lab_record(
        user=clinician,
        patient=ward_patient,
        analyte="ferritin",
        value="150000",
        collected_at=at(ward_patient, 2),
        confirmed=True,
    )
    assert lab.flags == [
        "Ferritin 150000 µg/L is outside the usual range 0–100000 µg/L; check the value and its unit",
        "Ferritin 150000 µg/L differs 10-fold or more from the previous value 5000 µg/L. "
        "Check the unit (mg/dL vs mg/L, cells/µL vs 10^9/L).",
    ]
    url = reverse("patients:detail", args=[ward_patient.mrn])
    _chinese(clin_client)
    html = clin_client.get(url).content.decode()
    assert "铁蛋白 150000 µg/L 超出常见范围 0–100000 µg/L；请核对数值及其单位" in html
    assert "铁蛋白 150000 µg/L 与上次结果 5000 µg/L 相差 10 倍或以上" in html
    assert "is outside the usual range" not in html


@pytest.mark.django_db
def test_record_history_uses_words_not_codes_and_reads_in_chinese(clin_client, clinician, ward_patient):
    from patients import services

    on = ward_patient.infusion.infusion_date + timedelta(days=1)
    obs = services.observation_record(user=clinician, patient=ward_patient, date=on, tmax_c="38.2")
    services.observation_void(
        user=clinician, observation=obs, expected_version=obs.version, reason="wrong day"
    )
    url = reverse("patients:history", args=[ward_patient.mrn])
    html = clin_client.get(url).content.decode()
    assert "Highest temperature (°C)" in html and "tmax c" not in html
    assert "voided: wrong day" in html
    _chinese(clin_client)
    html = clin_client.get(url).content.decode()
    assert "最高体温" in html
    assert "已作废：wrong day" in html
    assert "tmax c" not in html and "entered by" not in html
