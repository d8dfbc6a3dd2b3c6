"""MRNs unique whatever their case; names refuse control and text-direction characters (issue 9).

Before the unique index is created, any MRNs that differ only in case are listed and the
migration stops: which of the two is the real patient is a clinical decision, not ours.
"""

from collections import defaultdict

import django.db.models.functions.text
from django.core.management.base import CommandError
from django.db import migrations, models

import patients.models


def refuse_case_clashes(apps, schema_editor):
    Patient = apps.get_model("patients", "Patient")
    groups = defaultdict(list)
    for pk, mrn in Patient.objects.using(schema_editor.connection.alias).values_list("pk", "mrn"):
        groups[mrn.lower()].append((mrn, pk))
    clashes = [sorted(rows) for rows in groups.values() if len(rows) > 1]
    if clashes:
        lines = [
            " = ".join(f"{mrn} (patient id {pk})" for mrn, pk in rows) for rows in sorted(clashes)
        ]
        raise CommandError(
            "MRNs must be unique whatever their case, but these patients' MRNs differ only in case:\n  "
            + "\n  ".join(lines)
            + "\nDecide which record is the patient's, merge or rename the others (keeping their "
            "history), then run migrate again. Nothing was changed."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0004_h5_datatransfer_append_only"),
    ]

    operations = [
        migrations.RunPython(refuse_case_clashes, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="historicalpatient",
            name="name",
            field=models.CharField(
                max_length=200, validators=[patients.models.validate_display_text], verbose_name="name"
            ),
        ),
        migrations.AlterField(
            model_name="patient",
            name="name",
            field=models.CharField(
                max_length=200, validators=[patients.models.validate_display_text], verbose_name="name"
            ),
        ),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("mrn"), name="patient_mrn_unique_ci"
            ),
        ),
    ]
