"""A synthetic demo cohort and the demo accounts (SPEC 8.3). Nothing here is real data.

:func:`build_cohort` is pure: the same ``seed`` and ``today`` give the same four
CSV files, byte for byte. ``today`` is the only date it depends on. Infusion
dates are placed relative to it so that a handful of patients are on the ward
now (days −2 … +45 after infusion, with data up to yesterday) and the rest are
historical (infused 120 to about 900 days ago, followed for up to two years).
Run on another day, the cohort keeps its shape and shifts in time.

The clinical story of each patient hangs on a latent CRS severity, partly
driven by marrow disease burden (MRD). It sets the CRS grade by rank, so the
marginals match the sources (any grade ≈ 67 %, grade ≥ 3 ≈ 14 %, seed 000), and
it drives the day-7 labs, so that they carry signal about severe CRS. Early
B-cell regeneration raises the risk of relapse (seed 003).

:func:`seed_demo` writes the files through the CSV import (bulk, with history)
and recomputes each new patient once, in one transaction.
"""

from __future__ import annotations

import csv
import io
import math
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group
from django.db import transaction

from crsrisk.accounts.models import Profile, Role, SecurityEvent
from crsrisk.accounts.services import clinical_grant_bootstrap
from patients import imports
from patients.models import CareTeam, Patient
from scoring.services import recompute_patients

DEFAULT_SEED = 2025
DEFAULT_PATIENTS = 125  # the size of the Ke et al. 2025 cohort (seed 000)
DEMO_TEAM = "Demo ward"
MRN_PREFIX = "DEMO-"
PRODUCT = "CD19 CAR-T (site product)"

CRS_ANY_FRACTION = 0.67  # CRS of any grade, seed 000
SEVERE_FRACTION = 0.14  # grade ≥ 3, seed 000 (about 17 of 125)
GRADE4_SHARE_OF_SEVERE = 0.3
GRADE2_SHARE_OF_MILD = 0.4
CR_FRACTION = 0.82  # complete remission, seeds 000 and 003
EARLY_REGENERATION_FRACTION = 0.4  # of patients in CR, seed 003 (about 18 of 45)
RELAPSE_P_EARLY = 0.65  # relapse after early B-cell regeneration, seed 003 (no preemptive therapy)
RELAPSE_P_EARLY_ANTI_LEUKEMIC = 0.35  # preemptive anti-leukemic therapy helped, seed 003
RELAPSE_P_OTHER = 0.18  # relapse with late or no regeneration
PREEMPTIVE_FRACTION = 0.5  # of early regenerators
HSCT_FRACTION = 0.1  # consolidating allogeneic transplant in CR
CRS_DEATH_P_GRADE4 = 0.3
OTHER_DEATH_P_NO_CR = 0.3
OTHER_DEATH_P_RELAPSE = 0.25

# Days after infusion of the patients on the ward today (the rest are historical).
WARD_DAYS = (-2, 0, 2, 4, 6, 9, 13, 18, 27, 45)
HISTORICAL_MIN_DAYS_AGO = 120
HISTORICAL_SPAN_DAYS = 780
MAX_FOLLOW_UP_DAY = 720  # within the storable +730 days, SPEC 1

LAB_DAYS = (*range(-5, 15), 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 90)  # daily 2 weeks, then weekly
BCELL_DAYS = (7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 90)
OBSERVATION_DAYS = range(0, 31)  # daily through the default CRS outcome window (SPEC 3.1), for fit_model
EARLY_BCELL_DAYS = (21, 28, 35, 42)  # a first detectable sample here is ≤ W = 45
LATE_BCELL_DAYS = (49, 56, 63, 70, 77, 84, 90)


@dataclass
class DemoCohort:
    """The four CSV files of a synthetic cohort, one list of rows per file."""

    rows: dict[str, list[list[str]]] = field(
        default_factory=lambda: {
            k: [] for k in (imports.PATIENTS, imports.LABS, imports.OBSERVATIONS, imports.EVENTS)
        }
    )

    def mrns(self) -> list[str]:
        return [r[0] for r in self.rows[imports.PATIENTS]]

    def csv_text(self, kind: str, only: set[str] | None = None) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(imports.COLUMNS[kind])
        writer.writerows(r for r in self.rows[kind] if only is None or r[0] in only)
        return out.getvalue()


def _fmt(value: float, places: int) -> str:
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _bump(d: float, peak: float, width: float) -> float:
    """A smooth rise and fall around ``peak`` (1 at the peak)."""
    return math.exp(-((d - peak) ** 2) / (2 * width**2))


def _clamp(x: float, low: float, high: float) -> float:
    return max(low, min(high, x))


@dataclass
class _Story:
    mrn: str
    infusion: date
    day_now: int
    burden: float
    severity: float
    grade: int = 0
    in_cr: bool = False
    early_regeneration: bool = False


def _infusion_days_ago(n: int, rng: random.Random) -> list[int]:
    ward = list(WARD_DAYS[: max(0, min(len(WARD_DAYS), n - 1))])
    historical = n - len(ward)
    step = HISTORICAL_SPAN_DAYS / max(historical, 1)
    past = [
        HISTORICAL_MIN_DAYS_AGO + int(i * step) + rng.randint(0, max(int(step) - 1, 0))
        for i in range(historical)
    ]
    return sorted(past + ward, reverse=True)


def build_cohort(*, seed: int = DEFAULT_SEED, today: date, n_patients: int = DEFAULT_PATIENTS) -> DemoCohort:
    """A reproducible synthetic cohort; only ``today`` places it in time (see the module doc)."""
    rng = random.Random(seed)  # noqa: S311  # reproducible synthetic data, not security
    stories = []
    for i, days_ago in enumerate(_infusion_days_ago(n_patients, rng), start=1):
        burden = rng.gauss(0, 1)
        stories.append(
            _Story(
                mrn=f"{MRN_PREFIX}{i:04d}",
                infusion=today - timedelta(days=days_ago),
                day_now=days_ago,
                burden=burden,
                severity=0.6 * burden + 0.8 * rng.gauss(0, 1),
            )
        )
    _assign_grades(stories)
    _assign_responses(stories, rng)
    cohort = DemoCohort()
    for story in stories:
        _write_patient(cohort, story, rng)
    return cohort


def _assign_grades(stories: list[_Story]) -> None:
    """Grades by rank of severity, so the marginals match the sources for any seed."""
    n = len(stories)
    ranked = sorted(stories, key=lambda s: s.severity, reverse=True)
    n_severe = round(SEVERE_FRACTION * n)
    n_any = round(CRS_ANY_FRACTION * n)
    n_grade4 = round(GRADE4_SHARE_OF_SEVERE * n_severe)
    n_grade2 = round(GRADE2_SHARE_OF_MILD * (n_any - n_severe))
    for rank, story in enumerate(ranked):
        if rank < n_grade4:
            story.grade = 4
        elif rank < n_severe:
            story.grade = 3
        elif rank < n_severe + n_grade2:
            story.grade = 2
        elif rank < n_any:
            story.grade = 1


def _assign_responses(stories: list[_Story], rng: random.Random) -> None:
    """Exact shares of CR and, among CR, of early B-cell regeneration, in random order."""
    order = list(stories)
    rng.shuffle(order)
    n_cr = round(CR_FRACTION * len(order))
    n_early = round(EARLY_REGENERATION_FRACTION * n_cr)
    for rank, story in enumerate(order):
        story.in_cr = rank < n_cr
        story.early_regeneration = rank < n_early


def _mrd(rng: random.Random, burden: float) -> float:
    return _clamp(10 ** (0.3 + 0.9 * burden + rng.gauss(0, 0.45)), 0.001, 95.0)


def _mrd_text(value: float) -> str:
    return _fmt(value, 2 if value >= 0.1 else 3)


def _write_patient(cohort: DemoCohort, s: _Story, rng: random.Random) -> None:
    age = rng.randint(3, 70)
    birth = s.infusion - timedelta(days=365 * age + rng.randint(0, 364))
    baseline = _mrd(rng, s.burden)
    post_ld = baseline * rng.uniform(0.1, 0.9)
    has_mrd = rng.random() > 0.05
    has_ld = rng.random() > 0.1
    number = s.mrn.removeprefix(MRN_PREFIX)[1:]
    cohort.rows[imports.PATIENTS].append(
        [
            s.mrn,
            f"Synthetic Patient {number}",
            rng.choice("FM"),
            birth.isoformat(),
            DEMO_TEAM,
            "B-ALL",
            PRODUCT,
            s.infusion.isoformat(),
            _mrd_text(baseline) if has_mrd else "",
            _mrd_text(post_ld) if has_mrd else "",
            (s.infusion - timedelta(days=5)).isoformat() if has_ld else "",
        ]
    )
    # Data stop yesterday for patients on the ward, at day 90 otherwise, or at death.
    last_day = min(90, s.day_now - 1)
    events = _events(s, rng)
    death = next((d for kind, d, _ in events if kind == "death"), None)
    if death is not None:
        last_day = min(last_day, death)
    onset, peak, plateau_end, end = _crs_days(s, rng)
    toci_day = peak if s.grade >= 2 else None
    _observations(cohort, s, rng, last_day, onset, peak, plateau_end, end)
    _labs(cohort, s, rng, last_day, peak, toci_day, events)
    for kind, d, detail in events:
        if d <= s.day_now and kind != "_regeneration":
            cohort.rows[imports.EVENTS].append(
                [s.mrn, (s.infusion + timedelta(days=d)).isoformat(), kind, detail]
            )


def _crs_days(s: _Story, rng: random.Random) -> tuple[int, int, int, int]:
    onset = rng.randint(1, 3) if s.grade >= 3 else rng.randint(1, 6)
    peak = onset + rng.randint(1, 3)
    plateau_end = peak + (rng.randint(0, 2) if s.grade >= 3 else 0)
    end = plateau_end + rng.randint(0, 2)
    return onset, peak, plateau_end, end


_ORGAN_SUPPORT = {
    2: (("no_vasopressor", "none"), ("none", "low_flow"), ("no_vasopressor", "low_flow")),
    3: (("one_vasopressor", "low_flow"), ("no_vasopressor", "high_flow"), ("one_vasopressor", "high_flow")),
    4: (("multiple_vasopressors", "high_flow"), ("one_vasopressor", "positive_pressure")),
}


def _observations(
    cohort: DemoCohort,
    s: _Story,
    rng: random.Random,
    last_day: int,
    onset: int,
    peak: int,
    plateau_end: int,
    end: int,
) -> None:
    support = rng.choice(_ORGAN_SUPPORT[s.grade]) if s.grade >= 2 else ("none", "none")
    for d in OBSERVATION_DAYS:
        if d > last_day:
            break
        hyp, oxy, antipyretic, toci, steroids = "none", "none", 0, 0, 0
        if s.grade == 0 or d < onset or d > end:
            tmax = rng.uniform(36.3, 37.7)
        elif peak <= d <= plateau_end:
            tmax = rng.uniform(38.5, 40.2)
            hyp, oxy = support
            antipyretic = 1
            toci = int(s.grade >= 2 and d == peak)
            steroids = int(s.grade >= 3)
        else:
            tmax = rng.uniform(38.0, 39.2) if d < peak else rng.uniform(38.0, 38.6)
            antipyretic = 1
        row = [s.mrn, (s.infusion + timedelta(days=d)).isoformat(), _fmt(tmax, 1), hyp, oxy]
        cohort.rows[imports.OBSERVATIONS].append(row + [str(antipyretic), str(toci), str(steroids)])


def _events(s: _Story, rng: random.Random) -> list[tuple[str, int, str]]:
    """The patient's outcome events by day (an internal ``_regeneration`` marks B-cell return)."""
    events: list[tuple[str, int, str]] = []
    on_ward = s.day_now < HISTORICAL_MIN_DAYS_AGO
    follow_up = s.day_now - 1 if on_ward else min(s.day_now - rng.randint(0, 20), MAX_FOLLOW_UP_DAY)
    if s.grade == 4 and rng.random() < CRS_DEATH_P_GRADE4:
        return [("death", rng.randint(8, 14), "crs")]
    in_cr, early = s.in_cr, s.early_regeneration
    regeneration_day = rng.choice(EARLY_BCELL_DAYS if early else (*LATE_BCELL_DAYS, 999, 999, 999))
    events.append(("_regeneration", regeneration_day, ""))
    if not on_ward:
        events.append(("last_follow_up", follow_up, ""))
    if not in_cr:
        if rng.random() < OTHER_DEATH_P_NO_CR:
            events.append(("death", rng.randint(60, 240), "other"))
        return _within(events, follow_up)
    events.append(("cr", rng.randint(26, 32), ""))
    relapse_p = RELAPSE_P_OTHER
    if early:
        relapse_p = RELAPSE_P_EARLY
        if rng.random() < PREEMPTIVE_FRACTION:
            anti = rng.random() < 0.5
            detail = "anti_leukemic" if anti else "immunomodulatory"
            events.append(("preemptive_therapy", regeneration_day + rng.randint(5, 14), detail))
            relapse_p = RELAPSE_P_EARLY_ANTI_LEUKEMIC if anti else RELAPSE_P_EARLY
    elif rng.random() < HSCT_FRACTION:
        events.append(("hsct", rng.randint(60, 120), ""))
    if rng.random() < relapse_p:
        relapse = (60 + int(rng.expovariate(1 / 150))) if early else (90 + int(rng.expovariate(1 / 250)))
        events.append(("relapse", relapse, ""))
        if rng.random() < OTHER_DEATH_P_RELAPSE:
            events.append(("death", relapse + rng.randint(40, 200), "other"))
    return _within(events, follow_up)


def _within(events: list[tuple[str, int, str]], follow_up: int) -> list[tuple[str, int, str]]:
    """Drop what lies after follow-up ends (not yet happened); keep the marker."""
    kept = [e for e in events if e[0] == "_regeneration" or e[1] <= follow_up or e[0] == "last_follow_up"]
    if any(kind == "death" for kind, _, _ in kept):
        kept = [e for e in kept if e[0] != "last_follow_up"]
    return sorted(kept, key=lambda e: e[1])


def _labs(
    cohort: DemoCohort,
    s: _Story,
    rng: random.Random,
    last_day: int,
    peak: int,
    toci_day: int | None,
    events: list[tuple[str, int, str]],
) -> None:
    g = rng.gauss
    # The labs follow the CRS severity closely but not exactly (correlation about 0.75).
    sev = 0.75 * s.severity + 0.66 * g(0, 1)
    inflamed = s.grade > 0
    t_peak = peak + 1 if inflamed else rng.randint(2, 6)
    scale = 1.0 if inflamed else 0.25
    crp_base, crp_peak = 10 ** (0.8 + 0.2 * g(0, 1)), 10 ** (1.9 + 0.4 * sev + 0.3 * g(0, 1))
    fer_base, fer_peak = 10 ** (2.7 + 0.2 * g(0, 1)), 10 ** (3.5 + 0.45 * sev + 0.35 * g(0, 1))
    il6_base, il6_peak = 10 ** (0.8 + 0.2 * g(0, 1)), 10 ** (2.2 + 0.5 * sev + 0.4 * g(0, 1))
    aptt_base = 32 + 2.5 * g(0, 1)
    anc_pre, anc_nadir = 10 ** (0.4 + 0.15 * g(0, 1)), 10 ** (-0.35 - 0.25 * sev + 0.35 * g(0, 1))
    anc_recovery = 10 + int(6 * max(0.0, sev)) + rng.randint(0, 8)
    plt_pre = 10 ** (2.25 + 0.1 * g(0, 1))
    plt_nadir = max(8.0, plt_pre * (0.35 - 0.08 * sev))
    ldh_base = 10 ** (2.4 + 0.12 * g(0, 1) + 0.05 * s.burden)
    hsct_day = next((d for kind, d, _ in events if kind == "hsct"), None)
    regeneration = next((d for kind, d, _ in events if kind == "_regeneration"), 999)

    def count_curve(pre: float, nadir: float, recovery: int, d: int) -> float:
        if d <= -4:
            return pre
        if d <= 0:
            return float(pre * (nadir / pre) ** ((d + 4) / 4))
        if d <= recovery:
            return nadir
        return min(pre, nadir + (pre - nadir) * (d - recovery) / 14)

    for d in LAB_DAYS:
        if d > last_day:
            break
        # A naive morning time: site time, as a lab system would send it.
        day_date = (s.infusion + timedelta(days=d)).isoformat()
        when = f"{day_date}T{6 + rng.randint(0, 1):02d}:{rng.randint(0, 59):02d}"
        bump = scale * _bump(d, t_peak, 3)
        il6 = il6_base + (il6_peak - il6_base) * scale * _bump(d, t_peak, 2.5)
        if toci_day is not None and d > toci_day:
            il6 *= 2  # tocilizumab raises the measured IL-6
        values = {
            "crp": (_clamp((crp_base + (crp_peak - crp_base) * bump) * (1 + 0.1 * g(0, 1)), 0.2, 600), 1),
            "ferritin": (
                _clamp(fer_base + (fer_peak - fer_base) * scale * _bump(d, t_peak + 2, 5), 10, 150000),
                0,
            ),
            "il6": (_clamp(il6 * (1 + 0.1 * g(0, 1)), 1, 40000), 1),
            "aptt": (_clamp(aptt_base + max(0.0, 14 * (sev + 0.3) + g(0, 6)) * bump + g(0, 1.5), 20, 140), 1),
            "anc": (
                _clamp(count_curve(anc_pre, anc_nadir, anc_recovery, d) * (1 + 0.1 * g(0, 1)), 0.01, 30),
                2,
            ),
            "platelets": (
                _clamp(count_curve(plt_pre, plt_nadir, anc_recovery + 7, d) * (1 + 0.1 * g(0, 1)), 5, 900),
                0,
            ),
            "ldh": (_clamp(ldh_base + (150 + 200 * max(sev, 0.0)) * bump + g(0, 15), 80, 5000), 0),
        }
        for analyte, (value, places) in values.items():
            cohort.rows[imports.LABS].append([s.mrn, when, analyte, _fmt(value, places), "", ""])
        if d in BCELL_DAYS and (hsct_day is None or d < hsct_day + 30):
            cohort.rows[imports.LABS].append([s.mrn, when, "bcell", _bcell(rng, d, regeneration), "", ""])


def _bcell(rng: random.Random, d: int, regeneration_day: int) -> str:
    if d < regeneration_day:
        return "<1" if rng.random() < 0.3 else "0"
    return _fmt(_clamp(10 ** (0.4 + 0.03 * (d - regeneration_day) + 0.2 * rng.gauss(0, 1)), 1.5, 500), 1)


# --- writing it ------------------------------------------------------------------------------


@dataclass
class DemoResult:
    created_patients: int
    existing_patients: int
    accounts: list[tuple[str, str, bool]]  # username, role, created
    password: str | None  # set or generated in this run
    password_generated: bool
    password_reset: bool


DEMO_ACCOUNTS = (
    ("demo-clinician", Role.CLINICIAN),
    ("demo-hematologist", Role.HEMATOLOGIST),
    ("demo-admin", Role.ADMIN),
)
RECOMPUTE_CHUNK = 25


def _chunks(ids: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@transaction.atomic
def seed_demo(
    *,
    today: date,
    seed: int = DEFAULT_SEED,
    password: str | None = None,
    n_patients: int = DEFAULT_PATIENTS,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Create the missing demo patients and the demo accounts; idempotent.

    Existing demo MRNs are left untouched, so running again changes nothing,
    except that ``password`` resets the demo accounts' password.
    """
    say = progress or (lambda _msg: None)
    if password is not None:
        password_validation.validate_password(password)
    cohort = build_cohort(seed=seed, today=today, n_patients=n_patients)
    wanted = cohort.mrns()
    existing = set(Patient.objects.filter(mrn__in=wanted).values_list("mrn", flat=True))
    missing = {m for m in wanted if m not in existing}
    affected: set[int] = set()
    if missing:
        for kind in (imports.PATIENTS, imports.LABS, imports.OBSERVATIONS, imports.EVENTS):
            report = imports.run_import(
                kind,
                cohort.csv_text(kind, only=missing),
                filename=f"demo seed {seed}: {kind}.csv",
                recompute=False,
                affected=affected,
                synthetic=True,
            )
            if not report.ok:  # pragma: no cover - the generator writes valid files
                raise RuntimeError(
                    "the demo generator wrote a refused file:\n" + "\n".join(report.lines()[:20])
                )
            say(f"seeded {kind}.csv: {report.created} row(s)")
        ids = sorted(affected)
        done = 0
        for chunk in _chunks(ids, RECOMPUTE_CHUNK):
            done += recompute_patients(chunk)
            say(f"recomputed {done}/{len(ids)}")
    accounts, generated, used, reset = _ensure_accounts(password)
    return DemoResult(
        created_patients=len(missing),
        existing_patients=len(existing),
        accounts=accounts,
        password=used,
        password_generated=generated,
        password_reset=reset,
    )


def _ensure_accounts(password: str | None) -> tuple[list[tuple[str, str, bool]], bool, str | None, bool]:
    """The three demo accounts with roles and the demo team; never created by migrations."""
    user_model = get_user_model()
    team, _ = CareTeam.objects.get_or_create(name=DEMO_TEAM)
    existing = {u.username: u for u in user_model.objects.filter(username__in=[n for n, _ in DEMO_ACCOUNTS])}
    generated = False
    if password is None and len(existing) < len(DEMO_ACCOUNTS):
        password, generated = secrets.token_urlsafe(12), True
    accounts = []
    reset = False
    for username, role in DEMO_ACCOUNTS:
        user: Any = existing.get(username)
        created = user is None
        if created:
            user = user_model.objects.create_user(username=username, password=password)
            SecurityEvent.objects.create(
                kind=SecurityEvent.Kind.ACCOUNT_CREATED,
                username=username,
                detail=f"demo account, role {role}",
            )
        elif password is not None and not generated:
            user.set_password(password)
            user.save(update_fields=["password"])
            reset = True
            SecurityEvent.objects.create(
                kind=SecurityEvent.Kind.PASSWORD_RESET, username=username, detail="demo --password"
            )
        user.groups.add(Group.objects.get_or_create(name=role.value)[0])
        profile, _ = Profile.objects.get_or_create(user=user)
        if role in (Role.CLINICIAN, Role.HEMATOLOGIST):
            profile.care_teams.add(team)
            if profile.clinical_grant_id is None:  # demo accounts are approved by the seed itself
                clinical_grant_bootstrap(user=user, note="demo seed")
        accounts.append((username, role.value, created))
    return (
        accounts,
        generated,
        password if (generated or reset or any(c for _, _, c in accounts)) else None,
        reset,
    )
