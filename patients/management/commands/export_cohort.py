"""`manage.py export_cohort DIR`: write the six CSV files of SPEC 8.2."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from patients.exports import export_cohort
from patients.management.commands._base import user_from_option


class Command(BaseCommand):
    help = "Write patients, labs, observations, events, assessments and summary CSV files into DIR."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("directory", help="target directory, created when missing")
        parser.add_argument("--user", help="username the export is attributed to")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_from_option(options.get("user"))
        try:
            report = export_cohort(directory=options["directory"], user=user, progress=self.stderr.write)
        except OSError as exc:
            raise CommandError(f"cannot write to {options['directory']}: {exc.strerror or exc}") from exc
        self.stderr.write(report.lines()[-1])
