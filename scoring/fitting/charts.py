"""Plotly figures of a fit report (ROC, calibration), as JSON-safe dicts.

Like ``scoring/charts.py``: templates embed each figure with ``json_script`` and
``static/js/charts.js`` draws it, so there is no inline script.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from scoring.charts import (
    COLOR_HIGH,
    COLOR_LINE,
    COLOR_MUTED,
    SQUARE_CHART_HEIGHT_PX,
    base_layout,
    chart_entry,
    square_axes,
)

CHART_HEIGHT_PX = 360


def roc_figure(report: dict[str, Any]) -> dict[str, Any]:
    """ROC curves of the integer score and the continuous model, with the chance line."""
    layout = base_layout(_("ROC curve"), _("Sensitivity"), height=CHART_HEIGHT_PX)
    layout["xaxis"] = {"title": {"text": _("1 − specificity")}, "range": [0, 1], "zeroline": False}
    layout["yaxis"].update({"range": [0, 1.02], "rangemode": "normal"})
    square_axes(layout, height=SQUARE_CHART_HEIGHT_PX)
    auc = report["performance"]["auc"]
    curves = (
        ("integer_score", _("Integer score"), COLOR_HIGH, "lines+markers"),
        ("continuous_model", _("Continuous model (reference)"), COLOR_LINE, "lines"),
    )
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": _("Chance"),
            "x": [0, 1],
            "y": [0, 1],
            "line": {"color": COLOR_MUTED, "dash": "dot", "width": 1},
        }
    ]
    for key, name, color, mode in curves:
        roc = report["roc"][key]
        apparent = auc[key]["apparent"]
        label = name if apparent is None else f"{name} (AUC {apparent:.3f})"
        data.append(
            {
                "type": "scatter",
                "mode": mode,
                "name": label,
                "x": roc["fpr"],
                "y": roc["tpr"],
                "line": {"color": color, "width": 2, "shape": "hv" if key == "integer_score" else "linear"},
            }
        )
    return {"data": data, "layout": layout}


def calibration_figure(report: dict[str, Any]) -> dict[str, Any]:
    """Observed against predicted risk by risk group, with the ideal diagonal."""
    cal = report["performance"]["calibration"]
    layout = base_layout(
        _("Calibration (dichotomized model)"), _("Observed proportion"), height=CHART_HEIGHT_PX
    )
    layout["xaxis"] = {"title": {"text": _("Predicted risk")}, "range": [0, 1], "zeroline": False}
    layout["yaxis"].update({"range": [0, 1.02], "rangemode": "normal"})
    square_axes(layout, height=SQUARE_CHART_HEIGHT_PX)
    groups = cal["groups"]
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": _("Ideal"),
            "x": [0, 1],
            "y": [0, 1],
            "line": {"color": COLOR_MUTED, "dash": "dot", "width": 1},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": _("Risk groups"),
            "x": [g["predicted"] for g in groups],
            "y": [g["observed"] for g in groups],
            "text": [_("%(n)s patients") % {"n": g["n"]} for g in groups],
            "marker": {"size": 10, "color": COLOR_LINE},
            "line": {"color": COLOR_LINE},
        },
    ]
    return {"data": data, "layout": layout}


def fit_report_figures(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report page's charts, each with an id, a data id, a title and a figure."""
    return [
        chart_entry("chart-roc", roc_figure(report)),
        chart_entry("chart-calibration", calibration_figure(report)),
    ]
