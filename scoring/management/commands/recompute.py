"""`manage.py recompute [--mrn MRN | --pending]`: recompute stored results under the active model (SPEC 4)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from patients.models import Patient
from scoring.services import recompute_patients, recompute_pending

PROGRESS_CHUNK = 50  # patients per transaction and per progress line


class Command(BaseCommand):
    help = "Recompute every patient's derived results (or one, with --mrn) under the active model."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--mrn", help="recompute only this patient")
        parser.add_argument(
            "--pending",
            action="store_true",
            help="recompute only the patients an import marked and did not finish (a stopped process)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("pending"):
            if options.get("mrn") is not None:
                raise CommandError("--pending and --mrn cannot be given together.")

            def progress(done: int, total: int) -> None:
                self.stderr.write(f"recomputed {done}/{total}")

            done = recompute_pending(on_progress=progress)
            self.stderr.write(f"recomputed {done} patient(s) marked for recompute.")
            return
        patients = Patient.objects.order_by("pk")
        if options.get("mrn") is not None:
            patients = patients.filter(mrn=options["mrn"])
            if not patients.exists():
                raise CommandError(f"--mrn {options['mrn']}: no such patient.")
        ids = list(patients.values_list("pk", flat=True))
        done = 0
        for start in range(0, len(ids), PROGRESS_CHUNK):
            # Each chunk commits on its own: results are a pure function of the stored rows.
            done += recompute_patients(ids[start : start + PROGRESS_CHUNK])
            self.stderr.write(f"recomputed {min(start + PROGRESS_CHUNK, len(ids))}/{len(ids)}")
        self.stderr.write(f"recomputed {done} patient(s).")
