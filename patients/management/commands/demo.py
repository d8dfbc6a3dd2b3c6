"""`manage.py demo [--seed N] [--password P] [--if-empty]`: synthetic cohort and demo accounts."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from patients.demo import DEFAULT_PATIENTS, DEFAULT_SEED, seed_demo
from patients.models import Patient


class Command(BaseCommand):
    help = (
        "Seed a synthetic demo cohort (every patient labelled synthetic) and the accounts demo-clinician, "
        "demo-hematologist and demo-admin. Idempotent; --password P resets the demo password."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
        )
        parser.add_argument(
            "--password", help="password of the demo accounts (set, or reset when they exist)"
        )
        parser.add_argument("--if-empty", action="store_true", help="seed only when there are no patients")
        parser.add_argument(
            "--patients", type=int, default=DEFAULT_PATIENTS, help=f"cohort size (default {DEFAULT_PATIENTS})"
        )
        parser.add_argument(
            "--today",
            type=date.fromisoformat,
            help="the date infusion dates are placed around (default: today in the site time zone)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and Patient.objects.exists():
            self.stderr.write("demo: the database already has patients; nothing seeded.")
            return
        if options["patients"] < 1:
            raise CommandError("--patients must be at least 1.")
        today = options["today"] or timezone.localdate()
        try:
            result = seed_demo(
                today=today,
                seed=options["seed"],
                password=options["password"],
                n_patients=options["patients"],
                progress=self.stderr.write,
            )
        except ValidationError as exc:
            raise CommandError("--password: " + " ".join(exc.messages)) from exc
        self.stderr.write(
            f"demo: {result.created_patients} synthetic patient(s) created, "
            f"{result.existing_patients} already present (seed {options['seed']}, placed around {today})."
        )
        self.stdout.write("Demo logins:")
        for username, role, created in result.accounts:
            self.stdout.write(f"  {username:<18} {role}{' (created)' if created else ''}")
        if result.password is not None:
            how = "generated" if result.password_generated else "set"
            scope = " for the accounts created now" if result.password_generated else ""
            self.stdout.write(f"  password ({how}{scope}): {result.password}")
        some_existed = not all(created for _, _, created in result.accounts)
        if result.password is None or (result.password_generated and some_existed):
            self.stdout.write("  password unchanged; reset it with: manage.py demo --password NEW-PASSWORD")
