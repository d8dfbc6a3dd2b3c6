"""``flush`` that also works on SQLite with the append-only triggers in place.

PostgreSQL flushes with TRUNCATE, which row triggers do not see. SQLite flushes with
DELETE, which the triggers refuse; so on SQLite they are dropped for the flush and put
back afterwards. Flushing erases everything, audit included, and is an operator's
command, never an application path (docs/security.md).
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands.flush import Command as FlushCommand
from django.db import DEFAULT_DB_ALIAS, connections

from crsrisk.accounts import appendonly


class Command(FlushCommand):
    def handle(self, **options: Any) -> None:
        connection = connections[options.get("database") or DEFAULT_DB_ALIAS]
        if connection.vendor != "sqlite":
            super().handle(**options)
            return
        appendonly.uninstall(connection)
        try:
            super().handle(**options)
        finally:
            appendonly.install(connection)
