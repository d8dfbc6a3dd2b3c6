"""Plotly figures of a patient's timeline, built as JSON-safe dicts (SPEC 8.1).

Templates embed each figure with ``json_script`` and ``static/js/charts.js``
draws it with ``Plotly.newPlot``: no inline script, so the CSP stays strict.
Every number is a float or int here, never a Decimal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _

from scoring.i18n import analyte_label
from scoring.rules.days import day_of
from scoring.rules.score import LANDMARK_DAY, MRD_INPUTS, ModelSpec
from scoring.rules.units import ANALYTES

COLOR_LOW = "#1a7f37"
COLOR_MID = "#9a6700"
COLOR_HIGH = "#cf222e"
COLOR_LINE = "#0550ae"
COLOR_MUTED = "#57606a"
GRADE_COLORS = ["#8c959f", "#bf8700", "#d1242f", "#a40e26", "#6e011a", "#3d0010"]
CHART_HEIGHT_PX = 280
SQUARE_CHART_HEIGHT_PX = 480  # a ROC of about 350 px a side, above the legend
HOURS_PER_DAY = 24
X_MARGIN_DAYS = 0.7
SYMBOL_BY_COMPARATOR = {"<": "triangle-down", "<=": "triangle-down", ">": "triangle-up", ">=": "triangle-up"}
LAB_CHART_ORDER = ("crp", "ferritin", "il6", "aptt", "anc", "platelets", "ldh")


@dataclass(frozen=True)
class ChartLab:
    """A live lab value as the charts need it."""

    analyte: str
    day: float  # day after infusion with the local time of day as a fraction
    value: float
    comparator: str
    time: str = ""  # local time of day, HH:MM

    @property
    def whole_day(self) -> int:
        """The day it was collected on (day −3 at 07:00 is −2.7 on the axis, and day −3)."""
        return math.floor(self.day)

    def hover(self, unit: str) -> str:
        """Value, unit, day and time of day, for the point's hover label."""
        return _("%(value)s %(unit)s, day %(day)s at %(time)s") % {
            "value": f"{self.comparator}{self.value:g}",
            "unit": unit,
            "day": self.whole_day,
            "time": self.time,
        }


def chart_labs(labs: Sequence[Any], tz: ZoneInfo, infusion_date: date) -> list[ChartLab]:
    """Place live lab results on the day axis, in site time."""
    out = []
    for lab in labs:
        local = lab.collected_at.astimezone(tz)
        day = day_of(lab.collected_at, tz, infusion_date)
        fraction = (local.hour + local.minute / 60) / HOURS_PER_DAY
        out.append(
            ChartLab(
                lab.analyte,
                round(day + fraction, 4),
                float(lab.value),
                lab.comparator or "",
                local.strftime("%H:%M"),
            )
        )
    return sorted(out, key=lambda x: x.day)


def base_layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    """The layout every chart starts from (site colours, axis titles, the legend below)."""
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 15}},
        "height": CHART_HEIGHT_PX,
        # Room below the axis title for a horizontal legend, so the two never overlap.
        "margin": {"l": 56, "r": 16, "t": 40, "b": 88},
        "xaxis": {"title": {"text": _("Day after infusion")}, "zeroline": False},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "x": 0, "y": -0.42, "yanchor": "top"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "font": {"family": "system-ui, sans-serif", "color": "#1b1f23"},
        "shapes": [],
        "annotations": [],
    }
    layout.update(extra)
    return layout


def square_axes(layout: dict[str, Any], *, height: int) -> dict[str, Any]:
    """Make a unit-square plot (ROC, calibration) square: one unit on x is one on y, whatever the width."""
    layout["height"] = height
    layout["xaxis"].update({"constrain": "domain"})
    layout["yaxis"].update({"scaleanchor": "x", "scaleratio": 1, "constrain": "domain"})
    return layout


def _vline(x: float, label: str, color: str = COLOR_MUTED) -> tuple[dict[str, Any], dict[str, Any]]:
    shape = {
        "type": "line",
        "x0": x,
        "x1": x,
        "yref": "paper",
        "y0": 0,
        "y1": 1,
        "line": {"color": color, "dash": "dot", "width": 1.5},
    }
    note = {
        "x": x,
        "yref": "paper",
        "y": 1,
        "text": label,
        "showarrow": False,
        # Written along the line, so a marker near the right edge is never cut off.
        "textangle": -90,
        "xanchor": "right",
        "yanchor": "top",
        "font": {"size": 11, "color": color},
    }
    return shape, note


def _hline(y: float, label: str, color: str = COLOR_HIGH) -> tuple[dict[str, Any], dict[str, Any]]:
    shape = {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": y,
        "y1": y,
        "line": {"color": color, "dash": "dash", "width": 1.5},
    }
    note = {
        "xref": "paper",
        "x": 1,
        "y": y,
        "text": label,
        "showarrow": False,
        "xanchor": "right",
        "yanchor": "bottom",
        "font": {"size": 11, "color": color},
    }
    return shape, note


def running_score_figure(rows: Sequence[Any], model: ModelSpec, summary: Any) -> dict[str, Any]:
    """Running score by day with band shading, the upper bound and the day-7 marker."""
    top = max(model.total_points, 1)
    layout = base_layout(_("Running score (trend)"), _("Points"))
    layout["yaxis"].update({"range": [-0.5, top + 0.5], "dtick": 1})
    bands = [
        (-0.5, model.intermediate_from - 0.5, COLOR_LOW, _("low")),
        (model.intermediate_from - 0.5, model.high_from - 0.5, COLOR_MID, _("intermediate")),
        (model.high_from - 0.5, top + 0.5, COLOR_HIGH, _("high")),
    ]
    for y0, y1, color, label in bands:
        if y1 <= y0:
            continue
        layout["shapes"].append(
            {
                "type": "rect",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": y0,
                "y1": y1,
                "fillcolor": color,
                "opacity": 0.09,
                "line": {"width": 0},
                "layer": "below",
            }
        )
        layout["annotations"].append(
            {
                "xref": "paper",
                "x": 0.005,
                "y": y1 - 0.05,
                "text": label,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "top",
                "font": {"size": 11, "color": color},
            }
        )
    shape, note = _vline(LANDMARK_DAY, _("day 7 (landmark)"))
    layout["shapes"].append(shape)
    layout["annotations"].append(note)
    days = [r.day for r in rows]
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": _("Upper bound (missing inputs)"),
            "x": days,
            "y": [r.max_points for r in rows],
            "line": {"color": COLOR_MUTED, "dash": "dash", "width": 1},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": _("Running score"),
            "x": days,
            "y": [r.points for r in rows],
            "line": {"color": COLOR_LINE, "width": 2},
            "marker": {
                "size": 8,
                "symbol": ["circle-open" if r.provisional else "circle" for r in rows],
            },
            "text": [_("provisional") if r.provisional else "" for r in rows],
        },
    ]
    # A star at day 7 only once a day-7 lab exists: before that the "score" is the MRD inputs.
    day7_labs = [] if summary is None else [f for f in summary.day7_factors if f["input"] not in MRD_INPUTS]
    if any(not f["missing"] for f in day7_labs):
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": _("Day-7 score"),
                "x": [LANDMARK_DAY],
                "y": [summary.day7_points],
                "marker": {"size": 14, "symbol": "star", "color": COLOR_HIGH},
            }
        )
    return {"data": data, "layout": layout}


def lab_figures(labs: Sequence[ChartLab], model: ModelSpec) -> list[dict[str, Any]]:
    """One chart per analyte with values, with the active model's cut-point line."""
    cuts = {f.input: f for f in model.factors}
    figures = []
    for code in LAB_CHART_ORDER:
        values = [x for x in labs if x.analyte == code]
        if not values:
            continue
        spec = ANALYTES[code]
        layout = base_layout(f"{analyte_label(code)} ({spec.canonical_unit})", spec.canonical_unit)
        factor = cuts.get(code)
        if factor is not None:
            shape, note = _hline(
                float(factor.cut),
                _("cut-point %(cmp)s %(cut)s") % {"cmp": factor.comparison, "cut": factor.cut},
            )
            layout["shapes"].append(shape)
            layout["annotations"].append(note)
            layout["yaxis"]["range"] = [0, max(float(factor.cut), *(v.value for v in values)) * 1.15]
        shape, note = _vline(LANDMARK_DAY, _("day 7"))
        layout["shapes"].append(shape)
        figures.append(
            {
                "analyte": code,
                "data": [
                    {
                        "type": "scatter",
                        "mode": "lines+markers",
                        "name": analyte_label(code),
                        "x": [v.day for v in values],
                        "y": [v.value for v in values],
                        "text": [v.hover(spec.canonical_unit) for v in values],
                        "hovertemplate": "%{text}<extra></extra>",
                        "marker": {
                            "size": 9,
                            "color": COLOR_LINE,
                            "symbol": [SYMBOL_BY_COMPARATOR.get(v.comparator, "circle") for v in values],
                        },
                        "line": {"color": COLOR_LINE, "width": 1.5},
                    }
                ],
                "layout": layout,
            }
        )
    return figures


def bcell_figure(
    labs: Sequence[ChartLab], *, window_days: int, threshold: Decimal, first_regeneration_day: int | None
) -> dict[str, Any] | None:
    """CD19+ B-cell counts with the day-W line and the regeneration marker."""
    values = [x for x in labs if x.analyte == "bcell"]
    if not values:
        return None
    unit = ANALYTES["bcell"].canonical_unit
    layout = base_layout(_("CD19+ B cells (%(unit)s)") % {"unit": unit}, unit)
    shape, note = _vline(window_days, _("day %(w)s") % {"w": window_days}, COLOR_HIGH)
    layout["shapes"].append(shape)
    layout["annotations"].append(note)
    if threshold > 0:
        shape, note = _hline(float(threshold), _("threshold τ"), COLOR_MUTED)
        layout["shapes"].append(shape)
        layout["annotations"].append(note)
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": _("CD19+ B cells"),
            "x": [v.day for v in values],
            "y": [v.value for v in values],
            "text": [v.hover(unit) for v in values],
            "hovertemplate": "%{text}<extra></extra>",
            "marker": {
                "size": 9,
                "color": COLOR_LINE,
                "symbol": [SYMBOL_BY_COMPARATOR.get(v.comparator, "circle") for v in values],
            },
        }
    ]
    if first_regeneration_day is not None:
        # On the sample itself, at its time of day like every lab point: the first detectable one of day r.
        detectable = [
            v
            for v in values
            if v.whole_day == first_regeneration_day
            and v.comparator not in ("<", "<=")
            and v.value > float(threshold)
        ]
        star = detectable[0] if detectable else None
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": _("Regeneration (day r)"),
                "x": [first_regeneration_day if star is None else star.day],
                "y": [0 if star is None else star.value],
                "marker": {"size": 16, "symbol": "star", "color": COLOR_HIGH},
            }
        )
    return {"data": data, "layout": layout}


GRADE_AXIS_MAX = 5  # ASTCT grades run 0–5 (5 from a death from CRS), SPEC 3.1
GRADE_DOMAIN = [0.3, 1.0]  # the grade bars above, the therapy row below, on their own axis
THERAPY_ROW_DOMAIN = [0.0, 0.2]


def crs_grade_figure(
    rows: Sequence[Any], reasons: Mapping[int, Sequence[str]] | None = None
) -> dict[str, Any]:
    """ASTCT grade per observed day with its reasons on hover; review days and therapy on a row below."""
    reasons = reasons or {}
    graded = [r for r in rows if r.crs_grade is not None]
    layout = base_layout(_("CRS grade (ASTCT 2019)"), _("Grade"))
    layout["yaxis"].update({"range": [0, GRADE_AXIS_MAX], "dtick": 1, "domain": GRADE_DOMAIN})
    # Therapy and review markers sit on a row of their own, not at a grade height.
    layout["yaxis2"] = {
        "domain": THERAPY_ROW_DOMAIN,
        "type": "category",
        "fixedrange": True,
        "showgrid": False,
        # The legend names each marker; row labels would not fit the tablet's left margin.
        "showticklabels": False,
        "anchor": "x",
    }
    layout["bargap"] = 0.3
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": _("CRS grade"),
            "x": [r.day for r in graded],
            "y": [r.crs_grade for r in graded],
            "marker": {"color": [GRADE_COLORS[min(r.crs_grade, 5)] for r in graded]},
            "text": [_("override") if r.crs_overridden else "" for r in graded],
            "hovertext": ["<br>".join(reasons.get(r.day, [])) for r in graded],
            "hovertemplate": _("Day %(day)s: grade %(grade)s") % {"day": "%{x}", "grade": "%{y}"}
            + "<br>%{hovertext}<extra></extra>",
        }
    ]
    markers = [
        ("crs_review", _("Not graded as CRS: review"), "x", COLOR_MID),
        ("antipyretic", _("Antipyretic"), "triangle-up", COLOR_MUTED),
        ("tocilizumab", _("Tocilizumab"), "diamond", COLOR_LINE),
        ("corticosteroids", _("Corticosteroids"), "square", "#8250df"),
    ]
    for attr, name, symbol, color in markers:
        chosen = [r.day for r in rows if getattr(r, attr)]
        if chosen:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": name,
                    "x": chosen,
                    "y": [name] * len(chosen),
                    "yaxis": "y2",
                    "marker": {"size": 11, "symbol": symbol, "color": color},
                    "hovertemplate": _("Day %(day)s: %(what)s") % {"day": "%{x}", "what": name}
                    + "<extra></extra>",
                }
            )
    return {"data": data, "layout": layout}


def m_easix_figure(rows: Sequence[Any], summary: Any) -> dict[str, Any] | None:
    """Daily m-EASIX (trend, not validated) and the pre-lymphodepletion value."""
    daily = [r for r in rows if r.m_easix is not None]
    pre = summary is not None and summary.m_easix_pre_ld is not None
    if not daily and not pre:
        return None
    layout = base_layout(_("m-EASIX"), _("LDH × CRP (mg/dL) / platelets"))
    data: list[dict[str, Any]] = []
    if daily:
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": _("Daily m-EASIX (trend)"),
                "x": [r.day for r in daily],
                "y": [float(r.m_easix) for r in daily],
                "line": {"color": COLOR_LINE},
            }
        )
    if pre:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": _("Pre-lymphodepletion m-EASIX"),
                "x": [summary.m_easix_pre_ld_day],
                "y": [float(summary.m_easix_pre_ld)],
                "marker": {"size": 13, "symbol": "diamond", "color": COLOR_HIGH},
            }
        )
    return {"data": data, "layout": layout}


def timeline_figures(
    *,
    rows: Sequence[Any],
    summary: Any,
    model: ModelSpec,
    labs: Sequence[Any],
    tz: ZoneInfo,
    infusion_date: date,
    window_days: int,
    threshold: Decimal,
    grade_reasons: Mapping[int, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """All charts of the patient page, each with an id, a title and a Plotly figure."""
    placed = chart_labs(labs, tz, infusion_date)
    figures: list[tuple[str, dict[str, Any] | None]] = [
        ("chart-score", running_score_figure(rows, model, summary)),
        ("chart-crs", crs_grade_figure(rows, grade_reasons)),
        (
            "chart-bcell",
            bcell_figure(
                placed,
                window_days=window_days,
                threshold=threshold,
                first_regeneration_day=None if summary is None else summary.first_regeneration_day,
            ),
        ),
        ("chart-measix", m_easix_figure(rows, summary)),
    ]
    figures += [(f"chart-lab-{fig.pop('analyte')}", fig) for fig in lab_figures(placed, model)]
    # One day axis for every chart, so they read side by side.
    days = [float(r.day) for r in rows] + [x.day for x in placed]
    x_range = [min([0.0, *days]) - X_MARGIN_DAYS, max([float(LANDMARK_DAY), *days]) + X_MARGIN_DAYS]
    for chart_id, fig in figures:
        if fig is not None:
            fig["layout"]["xaxis"]["range"] = list(x_range)
            if chart_id == "chart-bcell":  # the day-W line stays in view
                fig["layout"]["xaxis"]["range"][1] = max(x_range[1], window_days + 2 * X_MARGIN_DAYS)
    return [chart_entry(chart_id, fig) for chart_id, fig in figures if fig is not None]


def chart_entry(chart_id: str, figure: dict[str, Any]) -> dict[str, Any]:
    """What ``templates/scoring/_chart.html`` draws: ids for the element and its JSON, a title, the figure."""
    return {
        "id": chart_id,
        "data_id": f"{chart_id}-data",
        "title": figure["layout"]["title"]["text"],
        "figure": figure,
    }
