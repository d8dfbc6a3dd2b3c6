"""Delete web-import uploads nobody confirmed within IMPORT_UPLOAD_MAX_AGE_HOURS (issue 11)."""

from typing import Any

from django.core.management.base import BaseCommand

from patients.uploads import upload_purge_stale


class Command(BaseCommand):
    help = "Delete uploaded import files never confirmed within IMPORT_UPLOAD_MAX_AGE_HOURS."

    def handle(self, *args: Any, **options: Any) -> None:
        count = upload_purge_stale()
        self.stdout.write(f"purged {count} unconfirmed upload(s)")
