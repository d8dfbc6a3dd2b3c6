"""`manage.py fit_model`: fit the score on the local cohort into a draft model (SPEC 5, 8.3).

Progress and the report summary go to stderr. Nothing is activated: a
hematologist reviews the draft's fit report and activates it on the web.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from crsrisk.accounts.roles import is_hematologist
from scoring.fitting import engine, messages
from scoring.fitting.local import (
    FitNotStorable,
    fitted_draft_name,
    run_local_fit,
    storable_spec,
    store_fitted_draft,
)
from scoring.models import ScoreModel
from scoring.services import MODEL_NAME_RE


class Command(BaseCommand):
    help = (
        "Fit the severe-CRS score on the local cohort (SPEC 5) and store it as a draft model "
        "with its fit report. Nothing is activated."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--landmark",
            action="store_true",
            help="landmark design: patients alive without grade ≥ 3 by day 7; events after day 7 only",
        )
        parser.add_argument("--name", help="name of the draft model (default fitted-<design>-<date>)")
        parser.add_argument(
            "--bootstrap",
            type=int,
            default=engine.DEFAULT_BOOTSTRAP,
            help=f"bootstrap resamples (default {engine.DEFAULT_BOOTSTRAP})",
        )
        parser.add_argument("--seed", type=int, default=engine.DEFAULT_SEED, help="bootstrap seed")
        parser.add_argument(
            "--base",
            type=float,
            default=None,
            help="Sullivan's base B (default: the smallest positive coefficient)",
        )
        parser.add_argument("--dry-run", action="store_true", help="fit and report, store nothing")
        parser.add_argument(
            "--user", required=True, help="username of the hematologist who runs the fit (audited)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        design = engine.DESIGN_LANDMARK if options["landmark"] else engine.DESIGN_AS_PUBLISHED
        try:
            settings = engine.FitSettings(
                design=design, n_bootstrap=options["bootstrap"], seed=options["seed"], base=options["base"]
            )
        except ValueError as exc:
            raise CommandError(f"--bootstrap/--base: {exc}.") from None
        user = self._user(options["user"])
        name = options.get("name") or fitted_draft_name(design)
        if not MODEL_NAME_RE.match(name):
            raise CommandError(f"--name {name!r}: use 1–64 letters, digits, '.', '_' or '-'.")
        if not options["dry_run"] and ScoreModel.objects.filter(name=name).exists():
            raise CommandError(f"--name {name!r}: a model with this name already exists; choose another.")

        active = ScoreModel.objects.active()
        try:
            fit = run_local_fit(
                settings=settings,
                name=name,
                username=user.get_username(),
                model=active,
                progress=self.stderr.write,
            )
        except engine.FitRefused as exc:
            raise CommandError(f"not fitted: {exc}") from None
        # Only the person who ran the fit sees which patients were left out; the stored report
        # and its page count them by reason (SPEC 7).
        for exclusion in fit.cohort.exclusions:
            reasons = "; ".join(messages.exclusion_text(r) for r in exclusion["reasons"])
            self.stderr.write(f"excluded {exclusion['mrn']}: {reasons}")
        self._summary(fit.report, fit.spec.total_points)
        # The editor's own check, before anything is stored and in a dry run too: a draft the
        # editor could not edit, or with a band no patient can reach, is refused with what to do.
        try:
            spec = storable_spec(fit.spec, fit.report)
        except FitNotStorable as exc:
            raise CommandError(f"not stored: {exc}") from None
        if options["dry_run"]:
            self.stderr.write("dry run: nothing stored.")
            return
        try:
            model = store_fitted_draft(fit=fit, spec=spec, user=user, source=active, name=name, design=design)
        except ValidationError as exc:
            raise CommandError("not stored: " + " ".join(exc.messages)) from None
        self.stderr.write(
            f"stored draft model {model.name} (provenance fitted). Review its fit report at "
            f"{model.get_absolute_url()}report/ before activating it."
        )

    def _user(self, username: str) -> Any:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"--user {username!r}: no such user.")
        if not is_hematologist(user):
            raise CommandError(
                f"--user {username!r}: fitting is a hematologist action; this user is not one."
            )
        return user

    def _summary(self, report: dict[str, Any], total_points: int) -> None:
        cohort, perf = report["cohort"], report["performance"]["auc"]
        self.stderr.write(
            f"design {report['design']}: {cohort['analysed']} patients, {cohort['events']} events; "
            f"{cohort['excluded']} excluded; method {report['method']}"
        )
        points = ", ".join(
            f"{row['code']} {row['points']} (coefficient {row['coef']:.3f})"
            for row in report["points"]["factors"]
        )
        self.stderr.write(f"points (B = {report['points']['base']:.3f}, total {total_points}): {points}")
        self.stderr.write(
            f"bands: intermediate from {report['bands']['intermediate_from']}, "
            f"high from {report['bands']['high_from']}"
        )
        for key in ("integer_score", "dichotomized_model", "continuous_model"):
            row = perf[key]
            self.stderr.write(
                f"AUC {key}: apparent {_num(row['apparent'])} "
                f"(95% CI {_num(row['ci_low'])}–{_num(row['ci_high'])}), "
                f"optimism-corrected {_num(row['corrected'])}"
            )
        for warning in report["warnings"]:
            self.stderr.write(f"warning: {messages.warning_text(warning)}")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
