"""`manage.py import_events FILE`: import events.csv (SPEC 8.2), all or nothing."""

from __future__ import annotations

from patients.imports import EVENTS
from patients.management.commands._base import ImportCommand


class Command(ImportCommand):
    help = "Import events.csv (SPEC 8.2): the whole file is validated first; any bad row refuses it all."
    kind = EVENTS
    correctable = False
