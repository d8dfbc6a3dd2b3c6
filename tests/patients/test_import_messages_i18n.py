"""Import messages are produced through gettext, in the language active at the time (SPEC 8.1).

The compiled zh-Hans catalogue is regenerated from ``locale/zh_hans_*.py`` by the
lead, so these tests do not depend on its current content: they check that every
message of ``patients/imports.py`` is an extractable literal with a translation in
``locale/zh_hans_io.py`` that keeps its placeholders, and, with those translations
installed in the active catalogue (what ``compilemessages`` does), that an import
run under zh-Hans reports in Chinese and under English in English.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation
from django.utils.translation import trans_real

from patients import imports

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _zh() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("zh_hans_io", ROOT / "locale" / "zh_hans_io.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ZH


ZH = _zh()


def _gettext_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_"
    ]


@pytest.mark.nodb
def test_every_import_message_is_an_extractable_literal_with_a_chinese_translation():
    calls = _gettext_calls(ROOT / "patients" / "imports.py")
    assert len(calls) > 40  # the messages of the four planners, the header checks and the report
    for call in calls:
        assert len(call.args) == 1 and isinstance(call.args[0], ast.Constant), ast.unparse(call)
        assert call.args[0].value in ZH, f"no zh-Hans translation for {call.args[0].value!r}"


@pytest.mark.nodb
@pytest.mark.parametrize("msgid", sorted(ZH))
def test_each_translation_keeps_the_placeholders_of_its_msgid(msgid):
    assert sorted(PLACEHOLDER.findall(ZH[msgid])) == sorted(PLACEHOLDER.findall(msgid))
    assert ZH[msgid].count("%") == msgid.count("%")


@pytest.fixture
def zh_catalogue() -> Iterator[None]:
    """The zh-Hans catalogue with this area's translations, as after compilemessages."""
    catalog: Any = trans_real.translation("zh-hans")._catalog
    missing = object()
    before = {msgid: catalog.get(msgid, missing) for msgid in ZH}
    for msgid, text in ZH.items():
        catalog[msgid] = text
    yield
    for msgid, old in before.items():
        if old is missing:
            del catalog._catalogs[0][msgid]
        else:
            catalog[msgid] = old


LABS = (
    "mrn,collected_at,analyte,value,unit,note\n"
    "NOPE,2025-03-08T06:30:00+00:00,il6,3,pg/mL,\n"
    "P001,08/03/2025,anc,1,,\n"
)


@pytest.mark.django_db
def test_a_refused_import_reports_in_the_active_language(zh_catalogue, patient):
    with translation.override("zh-hans"):
        chinese = imports.run_import("labs", LABS, filename="labs.csv", dry_run=True)
    with translation.override("en"):
        english = imports.run_import("labs", LABS, filename="labs.csv", dry_run=True)
    unknown = ZH["no patient with MRN %(mrn)s; import patients.csv first (MRNs are case-sensitive)"]
    assert chinese.errors[0].reason == unknown % {"mrn": "NOPE"}
    assert english.errors[0].reason == (
        "no patient with MRN NOPE; import patients.csv first (MRNs are case-sensitive)"
    )
    accepted = ZH[
        "accepted: ISO 8601 such as 2025-03-08T06:30, 2025-03-08 06:30:00+08:00 or 2025-03-08T06:30Z "
        "(site time when no offset is given), or a bare date 2025-03-08 meaning 12:00 site time"
    ]
    bad_date = ZH["not a valid date and time; %(accepted)s"] % {"accepted": accepted}
    assert [(e.line, e.column, e.reason) for e in chinese.errors[1:]] == [(3, "collected_at", bad_date)]
    # The report lines are produced in the language active when they are read.
    with translation.override("zh-hans"):
        lines = chinese.lines()
    assert lines[0].startswith("labs.csv，第 2 行，列 mrn：值 'NOPE'：")
    assert lines[-1] == "labs.csv：已拒绝，未导入任何数据：2 行中有 2 行有错误（2 个错误）。"
    assert english.lines()[-1] == (
        "labs.csv: refused, nothing was imported: 2 of 2 row(s) have errors (2 error(s))."
    )
