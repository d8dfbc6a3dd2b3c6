"""Shared plumbing of the import commands: options, attribution, report on stderr."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from patients.imports import import_file


def user_from_option(username: str | None) -> Any:
    """The user named by ``--user``, or None; an unknown name is refused."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"--user {username}: no such user.")
    return user


class ImportCommand(BaseCommand):
    """``import_<kind> FILE [--dry-run] [--correct --reason TEXT] [--user USERNAME]``."""

    kind = ""
    correctable = True

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help=f"the {self.kind}.csv file (UTF-8, comma, header row)")
        parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
        if self.correctable:
            parser.add_argument(
                "--correct",
                action="store_true",
                help="update stored rows whose values differ, keeping the history (needs --reason)",
            )
            parser.add_argument("--reason", default="", help="why the stored rows are corrected")
        parser.add_argument("--user", help="username the import is attributed to")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_from_option(options.get("user"))
        correct = bool(options.get("correct"))
        reason = options.get("reason") or ""
        if reason and not correct:
            raise CommandError("--reason is for --correct; give both, or neither.")
        try:
            report = import_file(
                self.kind,
                options["file"],
                user=user,
                dry_run=options["dry_run"],
                correct=correct,
                reason=reason,
            )
        except OSError as exc:
            raise CommandError(f"cannot read {options['file']}: {exc.strerror or exc}") from exc
        for line in report.lines():
            self.stderr.write(line)
        if not report.ok:
            raise CommandError(f"{options['file']}: refused, nothing was imported (see the errors above).")
