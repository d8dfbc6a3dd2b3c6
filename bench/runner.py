"""The bench: each figure a ratio of two ways of doing the same work, in one run.

``run`` creates a scratch database of the configured engine (its name derived from
the configured one), builds the data, measures, and drops it. ``measure`` does the
measuring on whatever database is current, so a test can run it with tiny sizes.

Times are medians of runs that alternate the two sides (a, b, b, a, ...), so that a
neighbour's load on a shared machine falls on both. Peak memory is the process's
resident set above its level when the measured call starts, sampled every 10 ms.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

GOALS = {
    "entry_ratio": "≤ 1.5",
    "entry_scale_ratio": "≤ 1.1",
    "dashboard_queries": "equal, ≤ 15",
    "dashboard_ratio": "≤ 2",
    "import_ratio": "≤ 4",
    "recompute_ratio": "≤ 3",
    "import_peak_mb": "does not grow with the file",
    "recompute_peak_mb": "does not grow with the patients",
}
# One plausible value per analyte (canonical unit), so no entry asks for a confirmation.
VALUES = {
    "anc": "1.2",
    "crp": "50",
    "ferritin": "800",
    "il6": "30",
    "aptt": "35",
    "ldh": "250",
    "platelets": "120",
    "bcell": "0",
}
MB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """How much data each figure is measured on (the issue's sizes; ``QUICK`` for --quick)."""

    entry_days: int = 90  # the entry patient's days of data
    entry_repeats: int = 15  # POSTs per side
    others_small: int = 100  # other patients for the entry figures
    others_large: int = 10_000
    others_days: int = 14  # their days of labs for the entry figures
    dashboard_small: int = 50  # active patients
    dashboard_large: int = 1_000
    dashboard_repeats: int = 7
    import_rows: tuple[int, int] = (200_000, 1_000_000)  # the ratio is taken at the larger
    copy_repeats: int = 3
    recompute_days: int = 30  # each patient's days of data when a version is activated
    recompute_repeats: int = 2  # activations at the larger size

    def __post_init__(self) -> None:
        if not self.dashboard_small <= self.others_small <= self.dashboard_large <= self.others_large:
            raise ValueError(
                "sizes must grow: dashboard_small ≤ others_small ≤ dashboard_large ≤ others_large"
            )


FULL = Sizes()
QUICK = Sizes(
    entry_repeats=9,
    others_large=2_000,
    dashboard_repeats=5,
    import_rows=(20_000, 200_000),
    recompute_repeats=1,
)
TINY = Sizes(
    entry_days=10,
    entry_repeats=2,
    others_small=4,
    others_large=6,
    others_days=3,
    dashboard_small=2,
    dashboard_large=5,
    dashboard_repeats=2,
    import_rows=(40, 80),
    copy_repeats=2,
    recompute_days=4,
    recompute_repeats=1,
)


# --- measuring ------------------------------------------------------------------------------


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The ratio of the two sides' medians."""
    return statistics.median(numerator) / statistics.median(denominator)


def alternate(
    a: Callable[[], object], b: Callable[[], object], repeats: int
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` ``repeats`` times each, in the order a b b a a b ..."""
    times_a: list[float] = []
    times_b: list[float] = []
    for i in range(repeats):
        order = ((a, times_a), (b, times_b)) if i % 2 == 0 else ((b, times_b), (a, times_a))
        for fn, times in order:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return times_a, times_b


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """The resident set's peak above its level at entry, in MB (Linux ``/proc``)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self._base = self._peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._peak = max(self._peak, _rss_bytes())
        self.peak_mb = round((self._peak - self._base) / MB, 1)


# --- data -----------------------------------------------------------------------------------


class Ward:
    """The bench's care team, users and bulk-built patients."""

    def __init__(self) -> None:
        from django.contrib.auth.models import Group, User

        from crsrisk.accounts.models import Profile
        from crsrisk.accounts.services import clinical_grant_bootstrap
        from patients.models import CareTeam

        self.team = CareTeam.objects.create(name="Bench ward")
        self.user = User.objects.create_user(username="bench-clinician", password=None)
        self.user.groups.add(Group.objects.get_or_create(name="clinician")[0])
        Profile.objects.create(user=self.user).care_teams.set([self.team])
        self.hematologist = User.objects.create_user(username="bench-hematologist", password=None)
        self.hematologist.groups.add(Group.objects.get_or_create(name="hematologist")[0])
        Profile.objects.create(user=self.hematologist).care_teams.set([self.team])
        # Clinical access needs an approved grant (issue 9); the bench's accounts stand approved.
        for user in (self.user, self.hematologist):
            clinical_grant_bootstrap(user=user, note="bench")
        self.today = timezone.localdate()

    def add_patients(self, prefix: str, start: int, count: int, *, infusion_date: date) -> list[int]:
        """Register ``count`` patients in bulk (no labs yet); returns their ids."""
        from patients.models import Infusion, Patient

        ids: list[int] = []
        for first in range(start, start + count, 1000):
            batch = Patient.objects.bulk_create(
                Patient(mrn=f"{prefix}{i:06d}", name=f"Bench {prefix}{i}", care_team=self.team)
                for i in range(first, min(first + 1000, start + count))
            )
            Infusion.objects.bulk_create(Infusion(patient=p, infusion_date=infusion_date) for p in batch)
            ids.extend(p.pk for p in batch)
        return ids

    def add_days(self, ids: list[int], days: range) -> None:
        """Labs of every analyte and one observation on each of ``days``, in bulk."""
        from patients.models import Infusion, LabResult, Observation

        tz = timezone.get_current_timezone()
        now = timezone.now()
        for first in range(0, len(ids), 200):
            chunk = ids[first : first + 200]
            infusions = dict(
                Infusion.objects.filter(patient_id__in=chunk).values_list("patient_id", "infusion_date")
            )
            labs, observations = [], []
            for pid in chunk:
                for d in days:
                    day = infusions[pid] + timedelta(days=d)
                    at = datetime(day.year, day.month, day.day, 6, tzinfo=tz)
                    observations.append(
                        Observation(patient_id=pid, date=day, tmax_c=Decimal("37.0"), entered_at=now)
                    )
                    for analyte, value in VALUES.items():
                        labs.append(
                            LabResult(
                                patient_id=pid,
                                analyte=analyte,
                                value=Decimal(value),
                                collected_at=at,
                                entered_value=value,
                                entered_at=now,
                            )
                        )
            LabResult.objects.bulk_create(labs, batch_size=2000)
            Observation.objects.bulk_create(observations, batch_size=2000)

    def recompute(self, ids: list[int]) -> None:
        from scoring.services import recompute_patients

        for first in range(0, len(ids), 200):
            recompute_patients(ids[first : first + 200])


# --- the figures ----------------------------------------------------------------------------


def _panel_post(ward: Ward, when: datetime) -> dict[str, str]:
    from scoring.rules.units import ANALYTES

    local = timezone.localtime(when)
    data = {"collected_date": local.date().isoformat(), "collected_time": local.strftime("%H:%M")}
    for analyte, value in VALUES.items():
        data[f"{analyte}_value"] = value
        data[f"{analyte}_unit"] = ANALYTES[analyte].canonical_unit
    return data


class EntryTimer:
    """An 8-analyte panel POST through the app, and the same 8 inserts through the bare view."""

    def __init__(self, ward: Ward, client: Client, mrn: str) -> None:
        self.ward, self.client, self.mrn = ward, client, mrn
        # Each POST takes the next earlier minute before the bench started, so none collides
        # or lies ahead.
        self._anchor = timezone.now().replace(second=0, microsecond=0)
        self._minute = 0
        self._since = timezone.now()

    def reset(self) -> None:
        """Remove the panels posted so far (both sides) and recompute the patient, so that a
        later measurement starts from the same 90 days: every panel goes on the latest day, so
        without this the later side would read and score the earlier side's panels too."""
        from patients.models import LabResult, Patient

        patient = Patient.objects.get(mrn=self.mrn)
        LabResult.objects.filter(patient=patient, entered_at__gte=self._since).delete()
        self.ward.recompute([patient.pk])

    def _when(self) -> datetime:
        self._minute += 1
        return self._anchor - timedelta(minutes=self._minute)

    def entry(self) -> None:
        response = self.client.post(f"/patients/{self.mrn}/labs/new/", _panel_post(self.ward, self._when()))
        if response.status_code != 302:
            errors = response.context["form"].errors.as_text() if response.context else ""
            raise RuntimeError(f"the panel POST was refused ({response.status_code}): {errors}")

    def bare(self) -> None:
        when = self._when()
        data = {**_panel_post(self.ward, when), "collected_at": when.isoformat()}
        response = self.client.post(f"/bench/bare/{self.mrn}/labs/", data)
        if response.status_code != 302:
            raise RuntimeError(f"the bare POST failed ({response.status_code})")


def _ward_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/patients/")
    if response.status_code != 200:
        raise RuntimeError(f"the ward list failed ({response.status_code})")
    return len(queries)


def _labs_file(path: Path, mrns: list[str], rows: int, days: int, infusion_date: date) -> int:
    """A labs CSV of about ``rows`` rows over these patients (SPEC 8.2 format)."""
    written = 0
    tz = timezone.get_current_timezone()
    # 06:00 each day, but never in the future: today's 06:00 is refused before it has come.
    latest = timezone.localtime(timezone.now(), tz).replace(second=0, microsecond=0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["mrn", "collected_at", "analyte", "value", "unit", "note"])
        for mrn in mrns:
            for d in range(days):
                day = infusion_date + timedelta(days=d)
                at = min(datetime(day.year, day.month, day.day, 6, tzinfo=tz), latest).isoformat()
                for analyte, value in VALUES.items():
                    writer.writerow([mrn, at, analyte, value, "", ""])
                    written += 1
                    if written >= rows:
                        return written
    return written


def _bare_table() -> None:
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_raw")
        cur.execute(
            "CREATE TABLE bench_raw (mrn varchar(32), collected_at varchar(40), analyte varchar(16), "
            "value varchar(32), unit varchar(32), note text)"
        )


def bulk_load(path: Path) -> None:
    """The import baseline: PostgreSQL COPY of the file into a bare table (SQLite: executemany)."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM bench_raw")
        if connection.vendor == "postgresql":
            with (
                path.open("rb") as f,
                cur.cursor.copy("COPY bench_raw FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            ):
                while block := f.read(1 << 20):
                    copy.write(block)
        else:
            with path.open(newline="") as f:
                reader = csv.reader(f)
                next(reader)
                while batch := [row for _, row in zip(range(10_000), reader, strict=False)]:
                    cur.executemany("INSERT INTO bench_raw VALUES (%s, %s, %s, %s, %s, %s)", batch)


def _new_draft(ward: Ward, name: str) -> Any:
    from scoring.models import ScoreModel
    from scoring.services import score_model_create_draft

    return score_model_create_draft(
        user=ward.hematologist, source=ScoreModel.objects.active(), name=name, provenance="edited"
    )


def recompute_baseline(ids: list[int], source: Any, target: Any, chunk: int = 200) -> float:
    """Read every patient's inputs and write ``source``'s stored outputs under ``target``: no computing.

    The outputs are written as the recompute writes them (``crsrisk.store``), so that the
    ratio is the computing and comparing, not a slower way of writing.

    Returns the seconds spent reading inputs, building the rows and writing them (reading
    the outputs' values out of the database first is not counted).
    """
    from crsrisk.store import insert_rows
    from scoring.models import DailyAssessment, PatientSummary
    from scoring.services import load_inputs

    spent = 0.0
    for first in range(0, len(ids), chunk):
        part = ids[first : first + chunk]
        rows = list(DailyAssessment.objects.filter(model=source, patient_id__in=part).values())
        summaries = list(PatientSummary.objects.filter(model=source, patient_id__in=part).values())
        for values in (*rows, *summaries):
            values.pop("id")
            values["model_id"] = target.pk
        start = time.perf_counter()
        with transaction.atomic():
            load_inputs(part)
            # The plainest fast write, the one the recompute uses (COPY on PostgreSQL).
            for model, values in ((DailyAssessment, rows), (PatientSummary, summaries)):
                if values:
                    insert_rows(model, list(values[0]), [tuple(v.values()) for v in values])
        spent += time.perf_counter() - start
    DailyAssessment.objects.filter(model=target).delete()
    PatientSummary.objects.filter(model=target).delete()
    return spent


def measure(sizes: Sizes, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Build the data on the current database and measure every figure."""
    from bench import views
    from patients.imports import run_import
    from patients.models import Patient
    from patients.selectors import ward_rows
    from scoring.models import ScoreModel

    figures = _Logged(log)
    detail = _Logged(log)
    ward = Ward()
    client = Client()
    client.force_login(ward.user)
    others_start = ward.today - timedelta(days=sizes.recompute_days - 1)

    with override_settings(ROOT_URLCONF="bench.urls"):
        # Entry patient: 90 days of data; others: 14 days of labs each.
        log("entry patient and the first others")
        (entry_pid,) = ward.add_patients(
            "BE", 0, 1, infusion_date=ward.today - timedelta(days=sizes.entry_days)
        )
        ward.add_days([entry_pid], range(sizes.entry_days))
        ward.recompute([entry_pid])
        entry = EntryTimer(ward, client, Patient.objects.get(pk=entry_pid).mrn)
        others = ward.add_patients("BO", 0, sizes.dashboard_small - 1, infusion_date=others_start)
        ward.add_days(others, range(sizes.others_days))
        ward.recompute(others)
        dash_small = _ward_queries(client)

        more = ward.add_patients(
            "BO", len(others), sizes.others_small - len(others), infusion_date=others_start
        )
        ward.add_days(more, range(sizes.others_days))
        ward.recompute(more)
        others += more
        log(f"entry with {len(others)} others")
        entry.entry()  # warm caches, templates and the session
        entry.bare()
        entry.reset()
        entry.entry()
        t_entry, t_bare = alternate(entry.entry, entry.bare, sizes.entry_repeats)
        figures["entry_ratio"] = round(median_ratio(t_entry, t_bare), 2)
        detail["entry_ms"] = round(statistics.median(t_entry) * 1000, 1)
        detail["entry_bare_ms"] = round(statistics.median(t_bare) * 1000, 1)
        with CaptureQueriesContext(connection) as queries:
            entry.entry()
        detail["entry_queries"] = len(queries)

        log("ward list at the larger size")
        more = ward.add_patients(
            "BO", len(others), sizes.dashboard_large - 1 - len(others), infusion_date=others_start
        )
        ward.add_days(more, range(sizes.others_days))
        ward.recompute(more)
        others += more
        dash_large = _ward_queries(client)
        figures["dashboard_queries"] = {
            str(sizes.dashboard_small): dash_small,
            str(sizes.dashboard_large): dash_large,
        }
        model, rows = ward_rows(ward.user, today=ward.today)
        views.PRECOMPUTED_WARD.update({"rows": rows, "model": model, "query": ""})
        t_ward, t_bare_ward = alternate(
            lambda: client.get("/patients/"), lambda: client.get("/bench/bare/ward/"), sizes.dashboard_repeats
        )
        figures["dashboard_ratio"] = round(median_ratio(t_ward, t_bare_ward), 2)
        detail["dashboard_ms"] = round(statistics.median(t_ward) * 1000, 1)
        detail["dashboard_bare_ms"] = round(statistics.median(t_bare_ward) * 1000, 1)

        # Recompute at the smaller size: these patients get their 30 days of data.
        log(f"activation over {len(others) + 1} patients")
        ward.add_days(others, range(sizes.others_days, sizes.recompute_days))
        recompute_peak: dict[str, float] = {}
        recompute_ratio: dict[str, float] = {}
        _recompute_figures(ward, len(others) + 1, 1, recompute_peak, recompute_ratio, detail)

        log(f"entry with {sizes.others_large} others")
        more = ward.add_patients(
            "BO", len(others), sizes.others_large - len(others), infusion_date=others_start
        )
        ward.add_days(more, range(sizes.others_days))
        ward.recompute(more)
        t_large: list[float] = []
        entry.reset()
        entry.entry()
        for _ in range(sizes.entry_repeats):
            start = time.perf_counter()
            entry.entry()
            t_large.append(time.perf_counter() - start)
        figures["entry_scale_ratio"] = round(statistics.median(t_large) / statistics.median(t_entry), 2)
        detail["entry_large_ms"] = round(statistics.median(t_large) * 1000, 1)

        log(f"activation over {sizes.others_large + 1} patients")
        ward.add_days(more, range(sizes.others_days, sizes.recompute_days))
        others += more
        _recompute_figures(
            ward, len(others) + 1, sizes.recompute_repeats, recompute_peak, recompute_ratio, detail
        )
        figures["recompute_ratio"] = recompute_ratio[str(len(others) + 1)]
        figures["recompute_peak_mb"] = recompute_peak
        detail["recompute_ratio_by_size"] = recompute_ratio

        # Import: its own patients, the file written beforehand.
        import_peak: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="crs-bench-") as tmp:
            _bare_table()
            for size in sizes.import_rows:
                per_patient = sizes.recompute_days * len(VALUES)
                count = -(-size // per_patient)
                log(f"import of {size} lab rows ({count} patients)")
                prefix = f"BI{size}"[:10] + "-"
                ids = ward.add_patients(prefix, 0, count, infusion_date=others_start)
                mrns = list(Patient.objects.filter(pk__in=ids).order_by("pk").values_list("mrn", flat=True))
                path = Path(tmp) / f"labs-{size}.csv"
                rows = _labs_file(path, mrns, size, sizes.recompute_days, others_start)
                copies: list[float] = []
                for _ in range(sizes.copy_repeats):
                    start = time.perf_counter()
                    bulk_load(path)
                    copies.append(time.perf_counter() - start)
                # From the open file, as manage.py import_labs; without DEBUG's log of every query,
                # which holds the last 9,000 statements' SQL (tens of MB) and is off in production.
                with override_settings(DEBUG=False), path.open("rb") as fh, PeakMemory() as peak:
                    start = time.perf_counter()
                    report = run_import("labs", fh, filename=path.name)
                    t_import = time.perf_counter() - start
                if not report.ok:
                    raise RuntimeError("the bench's import was refused: " + "; ".join(report.lines()[:5]))
                for _ in range(sizes.copy_repeats):
                    start = time.perf_counter()
                    bulk_load(path)
                    copies.append(time.perf_counter() - start)
                import_peak[str(rows)] = peak.peak_mb
                detail[f"import_{rows}_s"] = round(t_import, 2)
                detail[f"copy_{rows}_s"] = round(statistics.median(copies), 3)
                figures["import_ratio"] = round(t_import / statistics.median(copies), 1)
            with connection.cursor() as cur:
                cur.execute("DROP TABLE bench_raw")
        figures["import_peak_mb"] = import_peak
    detail["models"] = ScoreModel.objects.count()
    return {"figures": dict(figures), "detail": dict(detail)}


class _Logged(dict[str, Any]):
    """A dict that logs each value set, so an interrupted run still shows what it measured."""

    def __init__(self, log: Callable[[str], None]) -> None:
        super().__init__()
        self._log = log

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._log(f"  {key} = {value}")


def _recompute_figures(
    ward: Ward,
    patients: int,
    repeats: int,
    peaks: dict[str, float],
    ratios: dict[str, float],
    detail: dict[str, Any],
) -> None:
    """Activate fresh versions (timed, peak memory) alternating with the no-compute baseline."""
    from patients.models import Patient
    from scoring.models import ScoreModel
    from scoring.services import score_model_activate

    ids = list(Patient.objects.filter(infusion__isnull=False).order_by("pk").values_list("pk", flat=True))
    baseline_model = _new_draft(ward, f"bench-baseline-{patients}")
    activations: list[float] = []
    baselines: list[float] = []
    peak_mb = 0.0
    for i in range(repeats):
        draft = _new_draft(ward, f"bench-{patients}-{i}")
        if i % 2:
            baselines.append(recompute_baseline(ids, ScoreModel.objects.active(), baseline_model))
        with PeakMemory() as peak:
            start = time.perf_counter()
            score_model_activate(model=draft, user=ward.hematologist)
            activations.append(time.perf_counter() - start)
        peak_mb = max(peak_mb, peak.peak_mb)
        if not i % 2:
            baselines.append(recompute_baseline(ids, draft, baseline_model))
    peaks[str(patients)] = peak_mb
    ratios[str(patients)] = round(median_ratio(activations, baselines), 2)
    detail[f"activation_{patients}_s"] = round(statistics.median(activations), 2)
    detail[f"recompute_baseline_{patients}_s"] = round(statistics.median(baselines), 2)


# --- the scratch database -------------------------------------------------------------------


def scratch_name(configured: str, vendor: str, pid: int | None = None) -> str:
    """A scratch database's name derived from the configured one, unique to this process."""
    pid = os.getpid() if pid is None else pid
    if vendor == "sqlite":
        stem = Path(configured).stem if configured and configured != ":memory:" else "crsrisk"
        return str(Path(tempfile.gettempdir()) / f"{stem}_bench_{pid}.sqlite3")
    return f"{configured}_bench_{pid}"[:63]


@contextmanager
def scratch_database() -> Iterator[str]:
    """Create, migrate and finally drop a scratch database of the configured engine."""
    from django.test.utils import setup_test_environment, teardown_test_environment

    db = settings.DATABASES["default"]
    name = scratch_name(str(db["NAME"]), connection.vendor)
    db.setdefault("TEST", {})["NAME"] = name
    setup_test_environment(debug=False)
    old = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)
        teardown_test_environment()


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "engine": connection.vendor,
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), ""
            )
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            info["server"] = cur.fetchone()[0]
    return info


def run(sizes: Sizes, *, quick: bool, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Measure every figure on a scratch database; returns the report (JSON-safe)."""
    started, started_at = time.perf_counter(), timezone.now()
    with scratch_database() as name:
        log(f"scratch database {name}")
        info = machine()
        result = measure(sizes, log)
    return {
        "quick": quick,
        "sizes": asdict(sizes),
        "machine": info,
        "started": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "goals": GOALS,
        "argv": sys.argv[1:],
        **result,
    }
