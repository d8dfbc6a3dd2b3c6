"""A task every minute that records a worker's last sign of life (the /health/ page reads it)."""

from django.db import migrations

HEARTBEAT = "crsrisk.jobs.services.beat"


def forward(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        func=HEARTBEAT,
        defaults={"name": "worker heartbeat", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def backward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=HEARTBEAT).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_h8_jobs"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forward, backward)]
