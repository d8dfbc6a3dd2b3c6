"""``manage.py issue_token USERNAME``: issue a new API token and print it (SPEC 7, 8.4).

For deployment scripts, run by whoever controls the server. The web pages never let an admin
issue a token (issue 9); this command is audited as ``issued by manage.py issue_token``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crsrisk.accounts.services import token_issue


class Command(BaseCommand):
    help = "Issue a new API token for USERNAME (replacing any old one) and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No account named {username!r}.")
        try:
            key = token_issue(user=user, actor=None, ip_address=None)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(key)
