"""Append-only audit tables: triggers refuse UPDATE and DELETE (SPEC 7, 21 CFR 11.10(e)).

On PostgreSQL and SQLite; other vendors are not supported by the settings. The code
lives in crsrisk.accounts.appendonly so post_migrate can cover later history tables.
"""

from django.db import migrations


def forward(apps, schema_editor):
    from crsrisk.accounts import appendonly

    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        appendonly.install(schema_editor.connection)


def backward(apps, schema_editor):
    from crsrisk.accounts import appendonly

    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        appendonly.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_role_groups"),
        ("patients", "0001_initial"),
        ("scoring", "0002_provisional_v0"),
    ]

    operations = [migrations.RunPython(forward, backward)]
