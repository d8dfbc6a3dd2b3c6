"""`manage.py import_labs FILE`: import labs.csv (SPEC 8.2), all or nothing."""

from __future__ import annotations

from patients.imports import LABS
from patients.management.commands._base import ImportCommand


class Command(ImportCommand):
    help = "Import labs.csv (SPEC 8.2): the whole file is validated first; any bad row refuses it all."
    kind = LABS
    correctable = True
