"""``manage.py purge_idempotency_keys``: remove API Idempotency-Keys older than a day (SPEC 9)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from patients.api import idempotency


class Command(BaseCommand):
    help = (
        f"Delete the recorded answers of API writes sent with an Idempotency-Key more than "
        f"{idempotency.IDEMPOTENCY_KEY_HOURS} hours ago. Run it daily (cron or a scheduler)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = idempotency.purge(before=idempotency.expires_before(timezone.now()))
        self.stderr.write(f"purged {count} idempotency key(s).")
