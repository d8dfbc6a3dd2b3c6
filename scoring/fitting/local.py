"""Glue: the cohort from the database, the pure engine, and the fitted model it proposes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from scoring.fitting import engine
from scoring.fitting.cohort import FitCohort, build_cohort, exclusion_counts
from scoring.models import Provenance, ScoreModel
from scoring.rules.score import ModelSpec, model_spec_to_dict
from scoring.services import MAX_FACTOR_POINTS, score_model_create_draft, score_model_spec_check


@dataclass(frozen=True)
class LocalFit:
    """A finished fit: the proposed model, its report and the cohort it came from."""

    spec: ModelSpec
    report: dict[str, Any]
    cohort: FitCohort


def fitted_spec(cohort: FitCohort, report: dict[str, Any], name: str) -> ModelSpec:
    """The prespecified factors at their current cut-points with the fitted points and bands."""
    by_code = {row["code"]: row for row in report["points"]["factors"]}
    base = report["points"]["base"]
    factors = tuple(
        replace(
            f,
            points=int(by_code[f.code]["points"]),
            rationale=(
                f"fitted ({report['design']}): coefficient {by_code[f.code]['coef']:.3f}, "
                f"B = {base:.3f}; cut-point from {cohort.base_model}"
            ),
        )
        for f in cohort.spec.factors
    )
    return ModelSpec(
        name=name,
        factors=factors,
        intermediate_from=int(report["bands"]["intermediate_from"]),
        high_from=int(report["bands"]["high_from"]),
    )


def run_local_fit(
    *,
    settings: engine.FitSettings,
    name: str,
    username: str = "",
    model: ScoreModel | None = None,
    progress: Callable[[str], None] | None = None,
) -> LocalFit:
    """Build the cohort, fit it and return the proposed model with its report; stores nothing."""
    say = progress or (lambda _msg: None)
    cohort = build_cohort(model=model)
    say(
        f"cohort: {len(cohort.frame)} of {cohort.considered} patient(s) analysable, "
        f"{len(cohort.exclusions)} excluded (outcome window days 0–{cohort.outcome_window})"
    )
    report = engine.fit_cohort(cohort.frame, cohort.factors, settings, progress=say)
    report["cohort"].update(
        {
            "considered": cohort.considered,
            "with_known_outcome": len(cohort.frame),
            "excluded": len(cohort.exclusions),
            # Counts only: the report page is read by hematologists of every care team, so it
            # names no patient (SPEC 7). The command lists the excluded MRNs to its runner.
            "exclusion_counts": exclusion_counts(cohort.exclusions, tuple(f.code for f in cohort.factors)),
            "outcome_window": cohort.outcome_window,
            "inputs_from_day_6_or_8": cohort.counts["from_day_6_or_8"],
            "inputs_after_therapy": cohort.counts["after_therapy"],
            "inputs_censored_at_bound": cohort.counts["censored_at_bound"],
        }
    )
    report.update(
        {
            "base_model": cohort.base_model,
            "fitted_at": timezone.now().isoformat(timespec="seconds"),
            "fitted_by": username,
        }
    )
    report = engine.json_safe(report)
    spec = fitted_spec(cohort, report, name)
    return LocalFit(spec=spec, report=report, cohort=cohort)


def fitted_draft_name(design: str) -> str:
    """The default name of a fitted draft: ``fitted-<design>-<date and time>``."""
    return f"fitted-{design.replace('_', '-')}-{timezone.now():%Y%m%d-%H%M}"


def store_fitted_draft(
    *, fit: LocalFit, spec: dict[str, Any], user: Any, source: ScoreModel, name: str, design: str
) -> ScoreModel:
    """Store a checked fit as a draft with its report (the ``fit_model`` command and the web job)."""
    return score_model_create_draft(
        user=user,
        source=source,
        name=name,
        provenance=Provenance.FITTED,
        description=(
            f"Fitted on {fit.report['cohort']['analysed']} local patients "
            f"({fit.report['cohort']['events']} events), design {design}."
        ),
        spec=spec,
        fit_report=fit.report,
    )


class FitNotStorable(ValueError):
    """The fitted model fails the model editor's checks; the message says why and what to do."""


def storable_spec(spec: ModelSpec, report: dict[str, Any]) -> dict[str, Any]:
    """The fitted model as the editor's own check accepts it, or FitNotStorable.

    The fit is checked exactly as a hand-edited draft is (``score_model_spec_check``), so
    that the editor can edit every fitted draft and no fitted band is out of reach.
    """
    try:
        return score_model_spec_check(model_spec_to_dict(spec), name=spec.name)
    except ValidationError as exc:
        raise FitNotStorable(_refusal(spec, report, exc)) from None


def _refusal(spec: ModelSpec, report: dict[str, Any], exc: ValidationError) -> str:
    points = report["points"]
    coefs = {row["code"]: float(row["coef"]) for row in points["factors"]}
    worst = max(spec.factors, key=lambda f: f.points)
    if worst.points > MAX_FACTOR_POINTS:
        if points["base_given"]:
            base = f"the base B = {points['base']:g} (--base)"
        else:
            smallest = min((c, code) for code, c in coefs.items() if c > 0)
            base = f"the smallest positive coefficient ({smallest[1]}, {smallest[0]:.3f}) as base B"
        suggestion = engine.suggested_base(list(coefs.values()), max_points=MAX_FACTOR_POINTS)
        return (
            f"{base} gives {worst.points} points for one factor ({worst.code}); the model editor "
            f"accepts at most {MAX_FACTOR_POINTS} points per factor: rerun with --base {suggestion:g}, "
            "for example (the median positive coefficient, rounded up), or another base chosen from "
            "the coefficients in the report above. Nothing stored."
        )
    if spec.high_from > spec.total_points:
        why = (
            ""
            if report["bands"]["high_found"]
            else f" (no score above the intermediate cut-off, {spec.intermediate_from}, separates a "
            "high band in this cohort)"
        )
        return (
            f"the proposed high band starts at {spec.high_from} points, but the fitted points add up "
            f"to {spec.total_points} at most, so no patient could reach it{why} and no day-7 high-band "
            "alert could ever be raised: rerun with another --base, or create a draft from the active "
            "model in the model editor and set its bands there. Nothing stored."
        )
    return "the fitted model fails the model editor's checks: " + "; ".join(exc.messages) + " Nothing stored."
