"""``manage.py approve_grant USERNAME``: approve an account's pending clinical access.

For a site's first hematologist, when no hematologist can yet approve in the application.
Whoever runs it controls the server already; the audit records the approval as made by this
command, with no approving person. Every later grant is approved in the application.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crsrisk.accounts.models import ClinicalGrant
from crsrisk.accounts.services import grant_approve


class Command(BaseCommand):
    help = "Approve the pending clinical access of USERNAME (bootstrap of the first hematologist)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        grant = (
            ClinicalGrant.objects.filter(user__username=username, status=ClinicalGrant.Status.PENDING)
            .select_related("user")
            .first()
        )
        if grant is None:
            raise CommandError(f"No clinical access of {username!r} is waiting for approval.")
        try:
            grant_approve(actor=None, grant=grant, from_command=True)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        names = ", ".join(t.name for t in grant.care_teams.all())
        teams = "all care teams" if grant.all_care_teams else names
        self.stdout.write(f"Approved: {username} as {grant.role} ({teams or 'no care team'}).")
