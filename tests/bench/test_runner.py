"""The bench's own code, on tiny sizes (the bench itself stays out of the test suite)."""

from __future__ import annotations

import pytest
from django.urls import Resolver404, resolve

from bench import runner


@pytest.mark.nodb
def test_alternate_interleaves_the_two_sides_and_times_each():
    calls: list[str] = []
    times_a, times_b = runner.alternate(lambda: calls.append("a"), lambda: calls.append("b"), 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert len(times_a) == len(times_b) == 3


@pytest.mark.nodb
def test_median_ratio_divides_the_medians():
    assert runner.median_ratio([1.0, 9.0, 3.0], [1.0, 2.0, 1.0]) == 3.0


@pytest.mark.nodb
def test_scratch_name_derives_from_the_configured_database_and_the_process():
    assert runner.scratch_name("h6", "postgresql", pid=42) == "h6_bench_42"
    assert runner.scratch_name("/srv/db.sqlite3", "sqlite", pid=42).endswith("/db_bench_42.sqlite3")


@pytest.mark.nodb
def test_peak_memory_sees_an_allocation():
    with runner.PeakMemory() as peak:
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
    assert peak.peak_mb >= 32


@pytest.mark.nodb
def test_sizes_must_grow():
    with pytest.raises(ValueError):
        runner.Sizes(dashboard_small=10, others_small=5)


@pytest.mark.nodb
def test_the_bare_views_are_not_in_the_production_urls():
    with pytest.raises(Resolver404):
        resolve("/bench/bare/ward/")


@pytest.mark.django_db
def test_measure_gives_every_figure_on_tiny_sizes():
    report = runner.measure(runner.TINY)
    figures = report["figures"]
    assert set(figures) == set(runner.GOALS)
    assert set(figures["dashboard_queries"]) == {"2", "5"}
    assert figures["dashboard_queries"]["2"] == figures["dashboard_queries"]["5"]
    assert set(figures["recompute_peak_mb"]) == {"5", "7"}
    assert set(figures["import_peak_mb"]) == {"40", "80"}
    for name in ("entry_ratio", "entry_scale_ratio", "dashboard_ratio", "import_ratio", "recompute_ratio"):
        assert figures[name] > 0
