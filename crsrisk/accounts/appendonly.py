"""Database triggers that make the audit tables append-only (SPEC 7; 21 CFR 11.10(e)).

UPDATE and DELETE are refused on the access log, the security events, the import and
export trail (``patients_datatransfer``) and every django-simple-history table; INSERT
stays allowed. PostgreSQL and SQLite get the same
rule. TRUNCATE (``manage.py flush``, test teardown on PostgreSQL) is a database-owner
operation outside the application and is not blocked; see docs/security.md.

The triggers are installed by migration ``accounts.0003_append_only`` and again after
every ``migrate`` (``post_migrate``), so history tables added later are covered too.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

AUDIT_TABLES = ("accounts_accesslog", "accounts_securityevent", "patients_datatransfer")
# django-simple-history names its tables <app>_historical<model>.
HISTORY_TABLE = re.compile(r"^(patients|scoring)_historical[a-z0-9_]+$")
TRIGGER_PREFIX = "crsrisk_append_only"
PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {TRIGGER_PREFIX}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'append-only: % on % is refused', TG_OP, TG_TABLE_NAME;
END
$$;
"""


def append_only_tables(connection: BaseDatabaseWrapper) -> list[str]:
    """The audit tables present in the database."""
    with connection.cursor() as cursor:
        names = connection.introspection.table_names(cursor)
    return sorted(n for n in names if n in AUDIT_TABLES or HISTORY_TABLE.match(n))


def install(connection: BaseDatabaseWrapper) -> list[str]:
    """Create (or replace) the triggers on every audit table; returns the tables covered."""
    tables = append_only_tables(connection)
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_FUNCTION)
            for table in tables:
                cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX} ON {qn(table)}")
                cursor.execute(
                    f"CREATE TRIGGER {TRIGGER_PREFIX} BEFORE UPDATE OR DELETE ON {qn(table)} "
                    f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER_PREFIX}()"
                )
        elif connection.vendor == "sqlite":
            for table in tables:
                for op in ("UPDATE", "DELETE"):
                    name = qn(f"{TRIGGER_PREFIX}_{op.lower()}_{table}")
                    cursor.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON {qn(table)} "
                        f"BEGIN SELECT RAISE(ABORT, 'append-only: {op} on {table} is refused'); END"
                    )
    return tables


def uninstall_table(connection: BaseDatabaseWrapper, table: str) -> None:
    """Drop the triggers of one table (the reverse of a migration that covered it)."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX} ON {qn(table)}")
        elif connection.vendor == "sqlite":
            for op in ("update", "delete"):
                cursor.execute(f"DROP TRIGGER IF EXISTS {qn(f'{TRIGGER_PREFIX}_{op}_{table}')}")


def uninstall(connection: BaseDatabaseWrapper) -> None:
    """Drop the triggers (reverse migration, and ``flush`` on SQLite)."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in append_only_tables(connection):
                cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX} ON {qn(table)}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {TRIGGER_PREFIX}()")
        elif connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
                [f"{TRIGGER_PREFIX}%"],
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP TRIGGER IF EXISTS {qn(name)}")


def install_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver: cover history tables created by later migrations."""
    if getattr(sender, "name", None) == "crsrisk.accounts":
        install(connections[using])
