"""The import and export trail is append-only in the database too (issue 9).

The same triggers as accounts.0003_append_only, now on patients_datatransfer.
"""

from django.db import migrations


def forward(apps, schema_editor):
    from crsrisk.accounts import appendonly

    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        appendonly.install(schema_editor.connection)


def backward(apps, schema_editor):
    from crsrisk.accounts import appendonly

    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        appendonly.uninstall_table(schema_editor.connection, "patients_datatransfer")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_append_only"),
        ("patients", "0003_mrn_reserved_words"),
    ]

    operations = [migrations.RunPython(forward, backward)]
