"""Project-wide pytest configuration."""

from __future__ import annotations

import os

import pytest

# Tests run in the development environment, as `make run` does (SPEC 8.5).
os.environ.setdefault("DEBUG", "1")

PURE_TEST_PREFIXES = ("test_rules_",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the pure rule tests, which need no database."""
    for item in items:
        if item.path.name.startswith(PURE_TEST_PREFIXES):
            item.add_marker(pytest.mark.nodb)
