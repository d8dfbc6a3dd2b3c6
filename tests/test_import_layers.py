"""The write primitives sit below both apps, so the service modules never import in a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.nodb


def imported_modules(relative: str) -> set[str]:
    """Every module a source file imports, at module level or inside a function."""
    tree = ast.parse((ROOT / relative).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_write_primitives_import_neither_app() -> None:
    imports = imported_modules("crsrisk/writes.py")
    assert not {name for name in imports if name.split(".")[0] in {"patients", "scoring"}}


def test_scoring_services_does_not_import_patients_services() -> None:
    imports = imported_modules("scoring/services.py")
    assert "patients.services" not in imports
    assert "crsrisk.writes" in imports


def test_old_names_stay_importable_from_patients_services() -> None:
    from crsrisk import writes
    from patients import services

    assert services.ConflictError is writes.ConflictError
    assert services.NeedsConfirmation is writes.NeedsConfirmation
    assert services.site_today is writes.site_today
    assert services.check_not_future_date is writes.check_not_future_date
    assert services.check_not_future_time is writes.check_not_future_time


def test_csv_reading_sits_beneath_the_services_and_the_imports() -> None:
    imports = imported_modules("patients/csvread.py")
    assert not {name for name in imports if name.startswith(("patients.", "scoring.services"))}
    from patients import csvread
    from patients import imports as orchestration

    # The imports only orchestrate: the reading is csvread's, under the names tests use.
    assert orchestration.iter_rows is csvread.iter_rows and orchestration._Cells is csvread._Cells
    assert orchestration.parse_collected_at is csvread.parse_collected_at


_BUILDS_LAB = re.compile(r"(?<!class )\bLabResult\(")
NOUN_MODULES = ("patients", "labs", "observations", "events", "grades", "alerts", "site")


def test_clinical_services_are_a_package_with_one_module_per_noun() -> None:
    assert not (ROOT / "patients/services.py").exists()
    for noun in NOUN_MODULES:
        imports = imported_modules(f"patients/services/{noun}.py")
        # Beneath the entry points: a writer never imports the import, the API or a form.
        assert not {
            name
            for name in imports
            if name.startswith(("patients.imports", "patients.api", "patients.forms"))
        }, noun
        # A noun uses the shared helpers, and the death checks of events; no other noun's writer.
        others = {
            name.split(".")[2]
            for name in imports
            if name.startswith("patients.services.") and name.count(".") >= 2
        }
        assert others <= {"_common", "events", noun}, (noun, others)


def test_one_place_builds_a_lab_result_row() -> None:
    """Forms, the API and FHIR go through the labs writer; the CSV import writes by SQL."""
    builders = [
        path.relative_to(ROOT).as_posix()
        for folder in ("patients", "scoring", "crsrisk")
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts and _BUILDS_LAB.search(path.read_text(encoding="utf-8"))
    ]
    assert builders == ["patients/services/labs.py"]
