"""Words for the codes of a fit report (warnings, exclusions, design), in the reader's language."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from scoring.fitting import cohort, engine


def design_name(design: str) -> str:
    """The name of a design."""
    if design == engine.DESIGN_LANDMARK:
        return _("landmark (patients alive and without grade ≥ 3 CRS by day 7)")
    return _("as published (every patient with a known outcome)")


def design_caveat(design: str) -> str:
    """What the design means for the AUC."""
    if design == engine.DESIGN_LANDMARK:
        return _(
            "Landmark design: only patients alive and without grade ≥ 3 CRS by day 7 are analysed, and "
            "only severe CRS that began after day 7 counts as an event. This is the question the "
            "bedside asks on day 7, but it has fewer events than the published design."
        )
    return _(
        "As-published design: every patient with a known outcome is analysed, as in Ke et al. 2025. "
        "For patients whose severe CRS began before day 7, the day-7 labs may reflect CRS already "
        "under way, which inflates the AUC. Compare with a landmark fit (fit_model --landmark)."
    )


def method_name(method: str) -> str:
    if method == engine.METHOD_FIRTH:
        return _("Firth-penalized logistic regression (few events per variable)")
    return _("maximum-likelihood logistic regression")


def warning_text(w: dict[str, Any]) -> str:
    """One report warning in words."""
    code = w.get("code")
    if code == engine.W_EARLY_EVENTS:
        return _(
            "%(n)s severe-CRS event(s) began before day 7: their day-7 labs may reflect CRS already "
            "under way, which inflates the AUC."
        ) % {"n": w["n"]}
    if code == engine.W_BELOW_RILEY:
        return _(
            "The cohort (%(n)s patients) is smaller than the minimum sample size of Riley et al. "
            "(BMJ 2020) for this number of factors and this prevalence (%(minimum_n)s): expect "
            "overfitting; treat the points as exploratory."
        ) % {"n": w["n"], "minimum_n": w["minimum_n"]}
    if code == engine.W_LOW_EPV:
        return _("Only %(epv)s events per variable (the source study had about 2.4).") % {"epv": w["epv"]}
    if code == engine.W_NONPOSITIVE:
        return _("%(factor)s: coefficient ≤ 0 in the dichotomized model, so 0 points.") % {
            "factor": w["factor"]
        }
    if code == engine.W_ROUNDS_TO_ZERO:
        return _("%(factor)s: its coefficient rounds to 0 points with this base.") % {"factor": w["factor"]}
    if code == engine.W_CONSTANT_FACTOR:
        return _("%(factor)s: every analysed patient is on the same side of the cut-point.") % {
            "factor": w["factor"]
        }
    if code == engine.W_NO_HIGH_CUT:
        return _(
            "No score above %(intermediate_from)s separates the high band; the high band is left empty."
        ) % {"intermediate_from": w["intermediate_from"]}
    if code == engine.W_LARGE_POINTS:
        return _(
            "The points add up to %(total)s because the smallest positive coefficient (B = %(base).3f) "
            "is small; consider a larger base (fit_model --base)."
        ) % {"total": w["total"], "base": w["base"]}
    if code == engine.W_FEW_BOOTSTRAP:
        return _("Only %(n)s bootstrap resamples (at least %(minimum)s are recommended).") % {
            "n": w["n"],
            "minimum": w["minimum"],
        }
    if code == engine.W_BOOTSTRAP_SKIPPED:
        return _(
            "%(n)s bootstrap resample(s) could not be fitted (one outcome class only, or collinear "
            "factors) and were skipped."
        ) % {"n": w["n"]}
    if code == engine.W_SYNTHETIC:
        return _("The cohort includes %(n)s synthetic (demo) patients.") % {"n": w["n"]}
    return str(code)


def exclusion_text(reason: dict[str, Any]) -> str:
    """One exclusion reason in words."""
    code = reason.get("code")
    if code == cohort.X_NO_INFUSION:
        return _("no infusion recorded")
    if code == cohort.X_INPUT_MISSING:
        return _("day-7 input %(factor)s missing") % {"factor": reason["factor"]}
    if code == cohort.X_INPUT_UNDECIDED:
        return _("day-7 input %(factor)s is censored (%(value)s) on both sides of the cut-point") % {
            "factor": reason["factor"],
            "value": reason["value"],
        }
    if code == cohort.X_OBSERVATION_DAYS:
        return _("observation days %(days)s not recorded") % {"days": reason["days"]}
    return str(code)


def exclusion_reason_text(reason: dict[str, Any]) -> str:
    """One exclusion reason in words, for a count of patients (no patient's own values)."""
    code = reason.get("code")
    if code == cohort.X_INPUT_UNDECIDED:
        return _("day-7 input %(factor)s is censored on both sides of the cut-point") % {
            "factor": reason["factor"]
        }
    if code == cohort.X_OBSERVATION_DAYS:
        return _("some observation days not recorded")
    return exclusion_text(reason)
