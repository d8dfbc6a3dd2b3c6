"""`manage.py import_patients FILE`: import patients.csv (SPEC 8.2), all or nothing."""

from __future__ import annotations

from patients.imports import PATIENTS
from patients.management.commands._base import ImportCommand


class Command(ImportCommand):
    help = "Import patients.csv (SPEC 8.2): the whole file is validated first; any bad row refuses it all."
    kind = PATIENTS
    correctable = True
