"""Labs sit at their time of day on every chart, the regeneration star on its own sample (issue 8 item 9)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from scoring.charts import bcell_figure, chart_labs, lab_figures
from scoring.rules.score import PROVISIONAL_V0

TZ = ZoneInfo("Asia/Shanghai")
D0 = date(2025, 3, 10)


def _lab(analyte: str, when: datetime, value: str, comparator: str = "") -> SimpleNamespace:
    return SimpleNamespace(analyte=analyte, collected_at=when, value=Decimal(value), comparator=comparator)


def test_a_sample_before_infusion_keeps_its_day_and_time() -> None:
    (placed,) = chart_labs([_lab("crp", datetime(2025, 3, 7, 7, 0, tzinfo=TZ), "12")], TZ, D0)
    assert placed.day == round(-3 + 7 / 24, 4)
    assert placed.whole_day == -3
    assert placed.hover("mg/L") == "12 mg/L, day -3 at 07:00"


def test_lab_and_bcell_points_use_the_same_time_of_day_and_say_it() -> None:
    labs = [
        _lab("crp", datetime(2025, 3, 17, 7, 30, tzinfo=TZ), "230"),
        _lab("bcell", datetime(2025, 3, 17, 7, 30, tzinfo=TZ), "0"),
        _lab("bcell", datetime(2025, 3, 30, 6, 0, tzinfo=TZ), "1", comparator="<"),
        _lab("bcell", datetime(2025, 3, 30, 18, 0, tzinfo=TZ), "25"),
    ]
    placed = chart_labs(labs, TZ, D0)
    (crp,) = lab_figures(placed, PROVISIONAL_V0)
    bcell = bcell_figure(placed, window_days=45, threshold=Decimal(0), first_regeneration_day=20)
    assert bcell is not None
    assert crp["data"][0]["x"] == [round(7 + 7.5 / 24, 4)]
    assert bcell["data"][0]["x"][0] == crp["data"][0]["x"][0]
    assert crp["data"][0]["text"] == ["230 mg/L, day 7 at 07:30"]
    # The star marks the first detectable sample of day 20 (18:00), not the start of the day.
    star = bcell["data"][1]
    assert star["x"] == [round(20 + 18 / 24, 4)] and star["y"] == [25.0]
