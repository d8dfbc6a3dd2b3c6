"""``manage.py create_account USERNAME --role ROLE [--team NAME ...]``: the first accounts of a site.

The password is asked for twice at a terminal, or read from the first line of stdin when
stdin is not a terminal (for scripts). It goes through the same service, password rules and
audit (``account_created``, with no acting user: the command runs on the server) as an
account created on the admin pages.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from crsrisk.accounts.models import Role
from crsrisk.accounts.services import user_create
from patients.models import CareTeam


class Command(BaseCommand):
    help = (
        "Create an account in one role (admin, hematologist or clinician). The password is "
        "prompted for, or read from stdin when it is not a terminal."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument(
            "--team",
            action="append",
            default=[],
            metavar="NAME",
            help="a care team the account belongs to (repeatable; created if new); not for admins",
        )
        parser.add_argument(
            "--all-teams", action="store_true", help="a hematologist who sees every care team"
        )

    def handle(self, *args: Any, username: str, role: str, team: list[str], **options: Any) -> None:
        password = self._password()
        names = [t.strip() for t in team if t.strip()]
        try:
            with transaction.atomic():
                teams = []
                for name in names:
                    care_team, created = CareTeam.objects.get_or_create(name=name)
                    if created:
                        self.stderr.write(f"care team {name!r} created")
                    teams.append(care_team)
                user = user_create(
                    actor=None,
                    username=username,
                    password=password,
                    role=role,
                    care_teams=teams,
                    all_care_teams=options["all_teams"],
                )
        except ValidationError as exc:
            raise CommandError(_errors(exc)) from None
        self.stdout.write(f"created {role} account {user.username!r}")

    def _password(self) -> str:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("No password on stdin: give it on the first line.")
            return password
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("The two passwords differ; nothing was created.")
        return password


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)
