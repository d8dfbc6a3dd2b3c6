"""`manage.py bench [--quick] [--json FILE]`: the write paths' figures, as ratios (docs/performance.md)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from bench import runner


class Command(BaseCommand):
    help = (
        "Measure entry, ward list, import and recompute as ratios against bare baselines, on a "
        "scratch database of the configured engine (dropped afterwards)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--quick", action="store_true", help="smaller sizes: under 10 minutes")
        parser.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")

    def handle(self, *args: Any, **options: Any) -> None:
        sizes = runner.QUICK if options["quick"] else runner.FULL
        report = runner.run(sizes, quick=options["quick"], log=lambda line: self.stderr.write(line))
        for name, value in report["figures"].items():
            self.stdout.write(f"{name:20} {json.dumps(value):32} goal {runner.GOALS[name]}")
        self.stdout.write(f"({report['machine']['engine']}, {report['seconds']} s)")
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report, indent=2, default=str) + "\n")
