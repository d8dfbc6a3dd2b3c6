"""``manage.py import_fhir FILE [--dry-run] [--user USERNAME]``: a FHIR R4 Bundle of lab Observations."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from patients.api.fhir import import_bundle


class Command(BaseCommand):
    help = "Import a FHIR R4 Bundle of LOINC-coded Observations (JSON), all or nothing (SPEC 8.4)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="the Bundle, as FHIR JSON")
        parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
        parser.add_argument("--user", help="username the import is attributed to")

    def handle(self, *args: Any, **options: Any) -> None:
        user = None
        if options.get("user"):
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user {options['user']}: no such user.")
        path = options["file"]
        try:
            with open(path, encoding="utf-8-sig") as fh:  # a BOM is accepted, as in the CSV imports
                data = json.load(fh)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CommandError(f"{path}: not JSON in UTF-8 ({exc}); nothing was imported.") from exc
        try:
            result = import_bundle(data, user=user, dry_run=options["dry_run"], filename=Path(path).name)
        except ValidationError as exc:
            for where, messages in exc.message_dict.items():
                for message in messages:
                    self.stderr.write(f"{path}: {where}: {message}")
            raise CommandError(f"{path}: refused, nothing was imported (see the errors above).") from exc
        for where, messages in result.warnings.items():
            for message in messages:
                self.stderr.write(f"{path}: {where}: warning: {message}")
        for where, messages in result.notes.items():
            for message in messages:
                self.stderr.write(f"{path}: {where}: note: {message}")
        verb = "would store" if result.dry_run else "stored"
        self.stderr.write(
            f"{path}: {result.entries} entries; {verb} {result.stored} lab value(s), "
            f"skipped {result.skipped} already stored, for {len(result.patients)} patient(s)"
            + (" (dry run: nothing written)." if result.dry_run else ".")
        )
