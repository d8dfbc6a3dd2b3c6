"""Benchmarks: the cost of our write paths as ratios against a baseline, in one run.

Run with ``make bench`` (the database that DATABASE_URL names; a scratch test
database is created and dropped). Ratios, not seconds, are the result: they
compare two ways of doing the same work on the same machine in the same run.

- import_labs vs raw bulk load: the whole import path (validation, history,
  recompute of every affected patient) against PostgreSQL ``COPY`` of the same
  CSV into a plain table (SQLite: ``executemany`` INSERT).
- one lab entry vs a bare INSERT: the cost of history + recompute on a write.
- recompute scaling: recomputing 4× the patients should cost about 4×.
"""

from __future__ import annotations

import csv
import io
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crsrisk.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

UTC = ZoneInfo("UTC")
ANALYTES = [("crp", 5, 300), ("ferritin", 100, 20000), ("il6", 1, 2000), ("aptt", 25, 80), ("anc", 0, 8)]


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def labs_csv(mrns: list[str], infusion: date, days: int, rng: random.Random) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["mrn", "collected_at", "analyte", "value", "unit", "note"])
    for mrn in mrns:
        for d in range(days):
            ts = datetime.combine(infusion + timedelta(days=d), datetime.min.time(), tzinfo=UTC)
            for analyte, lo, hi in ANALYTES:
                writer.writerow(
                    [
                        mrn,
                        (ts + timedelta(hours=6)).isoformat(),
                        analyte,
                        round(rng.uniform(lo, hi), 2),
                        "",
                        "",
                    ]
                )
    return out.getvalue()


def register(n: int, prefix: str) -> list[str]:
    from patients import services

    mrns = [f"{prefix}{i:04d}" for i in range(n)]
    for mrn in mrns:
        services.patient_register(user=None, mrn=mrn, name=f"Bench {mrn}", infusion_date=date(2025, 1, 1))
    return mrns


def raw_load(text: str) -> None:
    """The baseline: load the same rows with the database's own bulk path."""
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_raw")
        cur.execute(
            "CREATE TABLE bench_raw (mrn varchar(32), collected_at varchar(40), analyte varchar(16), "
            "value varchar(32), unit varchar(32), note text)"
        )
        if connection.vendor == "postgresql":
            with cur.cursor.copy("COPY bench_raw FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                copy.write(text)
        else:
            rows = list(csv.reader(io.StringIO(text)))[1:]
            cur.executemany("INSERT INTO bench_raw VALUES (%s, %s, %s, %s, %s, %s)", rows)


def main() -> None:
    from patients import services
    from patients.imports import run_import
    from patients.models import LabResult
    from scoring.services import recompute_patients

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        rng = random.Random(7)
        results: list[tuple[str, float, str]] = []

        mrns = register(20, "BI")
        text = labs_csv(mrns, date(2025, 1, 1), 14, rng)
        n_rows = text.count("\n") - 1
        start = time.perf_counter()
        report = run_import("labs", text, filename="bench-labs.csv")
        t_import = time.perf_counter() - start
        assert report.ok, report.lines()
        t_raw = timed(lambda: raw_load(text))
        results.append(("import_labs / raw bulk load", t_import / t_raw, f"{n_rows} rows, 20 patients"))

        (mrn,) = register(1, "BS")
        from patients.models import Patient

        patient = Patient.objects.select_related("infusion").get(mrn=mrn)
        counter = iter(range(10_000))

        def entry() -> None:
            i = next(counter)
            services.lab_record(
                user=None,
                patient=patient,
                analyte="crp",
                value="50",
                collected_at=datetime(2025, 1, 2, tzinfo=UTC) + timedelta(minutes=i),
                confirmed=True,
            )

        def bare() -> None:
            i = next(counter)
            LabResult.objects.create(
                patient=patient,
                analyte="crp",
                value=50,
                collected_at=datetime(2025, 1, 3, tzinfo=UTC) + timedelta(minutes=i),
                entered_value="50",
                entered_at=datetime(2025, 1, 3, tzinfo=UTC),
            )

        results.append(("lab entry (service) / bare INSERT", timed(entry, 5) / timed(bare, 5), "1 value"))

        small = list(Patient.objects.filter(mrn__startswith="BI").values_list("pk", flat=True))[:5]
        large = list(Patient.objects.filter(mrn__startswith="BI").values_list("pk", flat=True))[:20]
        t_small = timed(lambda: recompute_patients(small))
        t_large = timed(lambda: recompute_patients(large))
        results.append(("recompute 20 patients / 5 patients", t_large / t_small, "ideal ≈ 4"))

        print(f"database: {connection.vendor}")
        print(f"{'benchmark':40} {'ratio':>8}  notes")
        for name, ratio, note in results:
            print(f"{name:40} {ratio:8.2f}  {note}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
