"""The fit report as the page shows it: worded codes and formatted numbers (SPEC 5)."""

from __future__ import annotations

from typing import Any

from scoring.fitting import cohort, messages

DASH = "—"


def num(value: Any, places: int = 2) -> str:
    """A number with fixed decimals, or a dash when there is none."""
    if value is None:
        return DASH
    return f"{float(value):.{places}f}"


def p_value(value: Any) -> str:
    if value is None:
        return DASH
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def _or_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "or_text": num(row.get("or")),
        "ci_text": DASH if row.get("ci_low") is None else f"{num(row['ci_low'])}–{num(row['ci_high'])}",
        "p_text": p_value(row.get("p")),
        "coef_text": num(row.get("coef"), 3),
    }


def _exclusion_counts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The exclusion counts by reason; a report stored before they existed listed each MRN."""
    stored = report["cohort"].get("exclusion_counts")
    if stored is not None:
        return list(stored)
    factor_order = tuple(str(f.get("code")) for f in report.get("factors", []))
    return cohort.exclusion_counts(report["cohort"].get("exclusions", []), factor_order)


def fit_report_view(report: dict[str, Any]) -> dict[str, Any]:
    """Everything the report template reads, with words in the reader's language."""
    perf = report["performance"]
    auc_rows = []
    for key in ("integer_score", "dichotomized_model", "continuous_model"):
        row = perf["auc"][key]
        auc_rows.append(
            {
                "key": key,
                "apparent": num(row["apparent"], 3),
                "ci": DASH if row["ci_low"] is None else f"{num(row['ci_low'], 3)}–{num(row['ci_high'], 3)}",
                "optimism": num(row["optimism"], 3),
                "corrected": num(row["corrected"], 3),
            }
        )
    cal = perf["calibration"]
    riley = report["sample_size"]["riley"]
    bands = report["bands"]
    return {
        "raw": report,
        "design_name": messages.design_name(report["design"]),
        "design_caveat": messages.design_caveat(report["design"]),
        "method_name": messages.method_name(report["multivariable"]["method"]),
        "warnings": [messages.warning_text(w) for w in report["warnings"]],
        "exclusion_reasons": [
            {"text": messages.exclusion_reason_text(r), "n": r["n"]} for r in _exclusion_counts(report)
        ],
        "prevalence_pct": num(100 * report["cohort"]["prevalence"], 1),
        "univariable": [_or_row(r) for r in report["univariable"]],
        "continuous": [_or_row(r) for r in report["multivariable"]["continuous"]["factors"]],
        "dichotomized": [_or_row(r) for r in report["multivariable"]["dichotomized"]["factors"]],
        "points": [
            {**r, "coef_text": num(r["coef"], 3), "ratio_text": num(r["ratio"], 2)}
            for r in report["points"]["factors"]
        ],
        "base_text": num(report["points"]["base"], 3),
        "auc": auc_rows,
        "calibration": {
            "slope": num(cal["slope"]),
            "slope_corrected": num(cal["slope_corrected"]),
            "intercept": num(cal["intercept"]),
            "brier": num(cal["brier"], 3),
        },
        "bands": {
            "sensitivity": num(
                None if bands["sensitivity_apparent"] is None else 100 * bands["sensitivity_apparent"], 0
            ),
            "sensitivity_corrected": num(
                None if bands["sensitivity_corrected"] is None else 100 * bands["sensitivity_corrected"], 0
            ),
            "specificity": num(
                None
                if bands["specificity_high_apparent"] is None
                else 100 * bands["specificity_high_apparent"],
                0,
            ),
            "specificity_corrected": num(
                None
                if bands["specificity_high_corrected"] is None
                else 100 * bands["specificity_high_corrected"],
                0,
            ),
            "table": [
                {
                    **row,
                    "sensitivity_text": num(100 * row["sensitivity"], 0),
                    "specificity_text": num(100 * row["specificity"], 0),
                    "youden_text": num(row["youden"], 2),
                }
                for row in bands["table"]
            ],
        },
        "sample_size": {
            "epv": num(report["sample_size"]["events_per_variable"], 1),
            "source_epv": num(report["sample_size"]["source_study_epv"], 1),
            "r2_cs": num(riley["r2_cs"], 3),
            "max_r2_cs": num(riley["max_r2_cs"], 3),
            "riley": riley,
            "below_minimum": report["sample_size"]["below_minimum"],
        },
    }
