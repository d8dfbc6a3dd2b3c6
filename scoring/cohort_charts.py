"""Plotly figures and table rows of the cohort analytics page (SPEC 6), as JSON-safe dicts.

Like ``scoring.charts``: the template embeds each figure with ``json_script`` and
``static/js/charts.js`` draws it, so there is no inline script. The pure results of
``scoring.cohort`` carry codes; the words are translated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from scoring import cohort
from scoring.charts import (
    COLOR_HIGH,
    COLOR_LINE,
    COLOR_LOW,
    COLOR_MID,
    COLOR_MUTED,
    GRADE_COLORS,
    SQUARE_CHART_HEIGHT_PX,
    base_layout,
    chart_entry,
    square_axes,
)

BAND_COLORS = {"low": COLOR_LOW, "intermediate": COLOR_MID, "high": COLOR_HIGH}
GROUP_COLORS = {
    cohort.EARLY: COLOR_HIGH,
    cohort.NOT_EARLY: COLOR_LINE,
    cohort.ANTI_LEUKEMIC: COLOR_LINE,
    cohort.IMMUNOMODULATORY: COLOR_MID,
}
PERCENT = 100
COUNTS_ROW_Y = 110  # the events/n row of the calibration chart, above the 100 % of any error bar


def group_label(code: str) -> str:
    """The words for a survival group."""
    labels = {
        cohort.EARLY: _("Early B-cell regeneration (on or before day 45)"),
        cohort.NOT_EARLY: _("No B-cell regeneration by day 45"),
        cohort.ANTI_LEUKEMIC: _("Anti-leukemic preemptive therapy"),
        cohort.IMMUNOMODULATORY: _("Immunomodulatory preemptive therapy"),
        "all": _("All patients at risk on day 45"),
    }
    return labels.get(code, code)


def exclusion_label(code: str) -> str:
    """The words for why a patient is not in a landmark analysis."""
    labels = {
        cohort.EXCLUDED_NO_CR: _("no complete remission recorded by day 45"),
        cohort.EXCLUDED_RELAPSE: _("relapse on or before day 45"),
        cohort.EXCLUDED_DEATH: _("died on or before day 45"),
        cohort.EXCLUDED_HSCT: _("allogeneic HSCT on or before day 45"),
        cohort.EXCLUDED_FOLLOW_UP: _("followed for 45 days or less (includes patients not yet at day 45)"),
        cohort.EXCLUDED_NO_BCELL: _("no B-cell count in days 1–45"),
        cohort.EXCLUDED_UNCONFIRMED: _("B-cell regeneration suspected on day 45, not yet confirmed"),
        cohort.EXCLUDED_NOT_EARLY: _("no early B-cell regeneration"),
        cohort.EXCLUDED_NO_THERAPY: _("no preemptive therapy started by day 45"),
    }
    return labels.get(code, code)


def band_label(code: str) -> str:
    return {"low": _("low"), "intermediate": _("intermediate"), "high": _("high")}.get(code, code)


@dataclass(frozen=True)
class GroupRow:
    """One line of a survival table."""

    label: str
    n: int
    events: int
    median: str  # "" when no curve is drawn


def median_text(curve: cohort.KaplanMeier | None) -> str:
    """Median RFS with its 95 % CI in words; a median not reached is said, never shown as a number."""
    if curve is None:
        return ""
    low, high = curve.median_ci
    if curve.median is None and low is None:
        return _("not reached")
    median = _("not reached") if curve.median is None else f"{curve.median:.0f}"
    return _("%(median)s (95 %% CI %(low)s–%(high)s)") % {
        "median": median,
        "low": "—" if low is None else f"{low:.0f}",
        "high": _("not reached") if high is None else f"{high:.0f}",
    }


def survival_rows(comparison: cohort.SurvivalComparison) -> list[GroupRow]:
    """The table of a survival comparison: each group, then everyone pooled."""
    curves = {c.group: c for c in comparison.curves}
    rows = []
    for g in comparison.groups:
        rows.append(GroupRow(group_label(g.group), g.n, g.events, median_text(curves.get(g.group))))
    if comparison.overall is not None:
        o = comparison.overall
        rows.append(GroupRow(group_label("all"), o.n, o.events, median_text(o)))
    return rows


def exclusion_rows(comparison: cohort.SurvivalComparison) -> list[tuple[str, int]]:
    return [(exclusion_label(code), count) for code, count in comparison.excluded]


def grade_figure(dist: cohort.GradeDistribution) -> dict[str, Any]:
    """Bar chart: patients per max CRS grade (ASTCT 2019)."""
    layout = base_layout(_("Max CRS grade (ASTCT 2019)"), _("Patients"))
    layout["xaxis"].update({"title": {"text": _("Max CRS grade")}, "dtick": 1})
    layout["bargap"] = 0.3
    data = [
        {
            "type": "bar",
            "name": _("Patients"),
            "x": list(range(len(dist.counts))),
            "y": list(dist.counts),
            "text": [str(c) for c in dist.counts],
            "textposition": "outside",
            "marker": {"color": GRADE_COLORS[: len(dist.counts)]},
        }
    ]
    return {"data": data, "layout": layout}


def roc_figure(result: cohort.RocResult) -> dict[str, Any]:
    """ROC curve of the day-7 points, the chance line and the AUC beside the paper's."""
    layout = base_layout(_("ROC: day-7 score against severe CRS"), _("Sensitivity"))
    layout["xaxis"].update({"title": {"text": _("1 − specificity")}, "range": [0, 1], "constrain": "domain"})
    layout["yaxis"].update({"range": [0, 1.02]})
    square_axes(layout, height=SQUARE_CHART_HEIGHT_PX)
    layout["shapes"].append(
        {"type": "line", "x0": 0, "y0": 0, "x1": 1, "y1": 1, "line": {"color": COLOR_MUTED, "dash": "dot"}}
    )
    auc = "—" if result.auc is None else f"{result.auc:.3f}"
    layout["annotations"].append(
        {
            "xref": "paper",
            "yref": "paper",
            "x": 0.98,
            "y": 0.04,
            "xanchor": "right",
            "yanchor": "bottom",
            "showarrow": False,
            "align": "right",
            "text": _("AUC here %(auc)s · paper's apparent AUC %(paper)s (optimistic)")
            % {"auc": auc, "paper": cohort.PAPER_APPARENT_AUC},
            "font": {"size": 11, "color": COLOR_MUTED},
        }
    )
    labels = [_("≥ %(points)s points") % {"points": f"{t:g}"} for t in result.thresholds]
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": _("Day-7 score"),
            "x": list(result.fpr),
            "y": list(result.tpr),
            "text": labels,
            "hovertemplate": "%{text}: %{y:.2f} / %{x:.2f}<extra></extra>",
            "line": {"color": COLOR_LINE, "width": 2},
            "marker": {"size": 8, "color": COLOR_LINE},
        }
    ]
    return {"data": data, "layout": layout}


def calibration_figure(cal: cohort.Calibration) -> dict[str, Any]:
    """Observed severe-CRS rate per day-7 point total, with Wilson 95 % CIs and counts."""
    layout = base_layout(_("Observed severe CRS by day-7 points"), _("Severe CRS (%)"))
    layout["xaxis"].update({"title": {"text": _("Day-7 points")}, "dtick": 1})
    # The events/n labels sit in a row of their own above 100 %, where no error bar reaches:
    # written on the bars ("outside") they covered the upper whiskers.
    layout["yaxis"].update({"range": [0, COUNTS_ROW_Y + 8], "tickvals": [0, 25, 50, 75, 100]})
    rows = [r for r in cal.by_points if r.rate is not None and r.ci is not None]
    x = [int(r.label) for r in rows]
    data = [
        {
            "type": "bar",
            "name": _("Observed"),
            "x": x,
            "y": [round(PERCENT * (r.rate or 0.0), 1) for r in rows],
            "marker": {"color": COLOR_LINE},
            "error_y": {
                "type": "data",
                "symmetric": False,
                "array": [round(PERCENT * (r.ci[1] - (r.rate or 0.0)), 1) for r in rows if r.ci],
                "arrayminus": [round(PERCENT * ((r.rate or 0.0) - r.ci[0]), 1) for r in rows if r.ci],
                "color": COLOR_MUTED,
            },
        },
        {
            "type": "scatter",
            "mode": "text",
            "name": _("Severe CRS / patients"),
            "showlegend": False,
            "x": x,
            "y": [COUNTS_ROW_Y] * len(rows),
            "text": [f"{r.events}/{r.n}" for r in rows],
            "textposition": "middle center",
            "hoverinfo": "skip",
            "cliponaxis": False,
        },
    ]
    return {"data": data, "layout": layout}


def km_figure(comparison: cohort.SurvivalComparison, title: str) -> dict[str, Any]:
    """Kaplan-Meier step curves from the landmark, with censoring marks."""
    layout = base_layout(title, _("Relapse-free survival"))
    layout["xaxis"].update(
        {"title": {"text": _("Days from the landmark (day %(day)s)") % {"day": comparison.landmark_day}}}
    )
    layout["yaxis"].update({"range": [0, 1.05], "tickformat": ".0%"})
    data: list[dict[str, Any]] = []
    for curve in comparison.curves:
        color = GROUP_COLORS.get(curve.group, COLOR_MUTED)
        name = group_label(curve.group)
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{name} (n={curve.n})",
                "x": list(curve.times),
                "y": list(curve.survival),
                "line": {"shape": "hv", "color": color, "width": 2},
            }
        )
        if curve.censor_times:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": _("censored"),
                    "showlegend": False,
                    "x": list(curve.censor_times),
                    "y": list(curve.censor_survival),
                    "marker": {"symbol": "line-ns-open", "size": 10, "color": color},
                    "hovertemplate": _("censored") + " %{x}<extra></extra>",
                }
            )
    return {"data": data, "layout": layout}


def _chart(key: str, figure: dict[str, Any]) -> dict[str, Any]:
    return chart_entry(f"chart-{key.replace('_', '-')}", figure)


def cohort_figures(report: cohort.CohortReport) -> dict[str, dict[str, Any]]:
    """The page's charts by analysis (id, data id, figure); an analysis that cannot be drawn has none."""
    out: dict[str, dict[str, Any]] = {}
    if report.grades.n:
        out["grades"] = _chart("grades", grade_figure(report.grades))
    if report.roc.auc is not None:
        out["roc"] = _chart("roc", roc_figure(report.roc))
    if report.calibration.n:
        out["calibration"] = _chart("calibration", calibration_figure(report.calibration))
    if report.rfs_regeneration.curves:
        title = _("Relapse-free survival by early B-cell regeneration")
        out["rfs_regeneration"] = _chart("rfs_regeneration", km_figure(report.rfs_regeneration, title))
    if report.rfs_therapy.curves:
        title = _("Relapse-free survival after early regeneration, by preemptive therapy")
        out["rfs_therapy"] = _chart("rfs_therapy", km_figure(report.rfs_therapy, title))
    return out
