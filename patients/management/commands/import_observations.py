"""`manage.py import_observations FILE`: import observations.csv (SPEC 8.2), all or nothing."""

from __future__ import annotations

from patients.imports import OBSERVATIONS
from patients.management.commands._base import ImportCommand


class Command(ImportCommand):
    help = (
        "Import observations.csv (SPEC 8.2): the whole file is validated first; any bad row refuses it all."
    )
    kind = OBSERVATIONS
    correctable = True
