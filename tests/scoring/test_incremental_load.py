"""A lab write's recompute loads only the labs it can use, and stores what a full one would.

``scoring.services`` recomputes a lab-only write from the write's day on, reading only the
labs those days and the summary use (``scoring.assess.lab_windows``: the days from the
write's day − 2 on, the day-7 landmark window, the pre-lymphodepletion m-EASIX window and
every B-cell lab), and every lab when those turn out not to suffice. Each test writes
through the services and checks the stored results against a from-scratch recompute.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from patients import services
from patients.models import LabResult, Observation
from scoring.assess import in_lab_windows, lab_windows, last_data_day, windowed_labs_suffice
from scoring.models import DailyAssessment, PatientSummary
from scoring.services import _infusion_rows, _load_inputs, load_inputs, recompute_patients
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db

INFUSION = date(2025, 3, 1)
LD_START = date(2025, 2, 24)  # day −5: the pre-lymphodepletion m-EASIX window is days −12…−5
DAYS = range(-10, 21)
# Values that move across the cut-points from day to day, so that a wrong lab changes a result.
SERIES = {
    "anc": ("0.3", "1.2"),
    "crp": ("250", "40"),
    "ferritin": ("12000", "800"),
    "il6": ("600", "20"),
    "aptt": ("60", "30"),
    "ldh": ("300", "900"),
    "platelets": ("120", "35"),
}


def local(day: int, hour: int = 8, minute: int = 0, tz: ZoneInfo | None = None) -> datetime:
    d = INFUSION + timedelta(days=day)
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=tz or UTC)


def bcell_value(day: int) -> str:
    # Aplasia from day 2, then regeneration suspected on day 14 and confirmed on day 16.
    return "0" if day < 14 else "25"


def build(user, team, *, days=DAYS, obs_days=range(0, 21), bcell_until: int = 99, tz: ZoneInfo | None = None):
    """A patient with labs of every analyte on each of ``days`` and observations, stored whole."""
    patient = services.patient_register(
        user=user,
        mrn="INC1",
        name="Incremental load",
        infusion_date=INFUSION,
        care_team=team,
        lymphodepletion_start=LD_START,
        baseline_mrd_pct=Decimal(8),
        post_ld_mrd_pct=Decimal(6),
    )
    now = datetime.now(UTC)
    labs = []
    for day in days:
        for analyte, (odd, even) in SERIES.items():
            value = even if day % 2 == 0 else odd
            labs.append(
                LabResult(
                    patient=patient,
                    analyte=analyte,
                    value=Decimal(value),
                    collected_at=local(day, tz=tz),
                    entered_value=value,
                    entered_at=now,
                )
            )
        if 2 <= day <= bcell_until:
            labs.append(
                LabResult(
                    patient=patient,
                    analyte="bcell",
                    value=Decimal(bcell_value(day)),
                    collected_at=local(day, 9, tz=tz),
                    entered_value=bcell_value(day),
                    entered_at=now,
                )
            )
    LabResult.objects.bulk_create(labs)
    Observation.objects.bulk_create(
        Observation(
            patient=patient,
            date=INFUSION + timedelta(days=day),
            tmax_c=Decimal("39.2") if day in (3, 4, 11) else Decimal("37.1"),
            hypotension="no_vasopressor" if day == 4 else "none",
            tocilizumab=day == 4,
            entered_at=now,
        )
        for day in obs_days
    )
    recompute_patients([patient.pk])
    assert_stored_equals_scratch(patient)
    return patient


def lab_of(patient, analyte: str, day: int) -> LabResult:
    return LabResult.objects.active().get(patient=patient, analyte=analyte, collected_at=local(day))


def enter(user, patient, when: datetime, **values: str) -> None:
    services.lab_panel_record(
        user=user,
        patient=patient,
        collected_at=when,
        entries=[services.LabEntry(analyte, value) for analyte, value in values.items()],
        confirmed=True,
    )


def correct(user, lab: LabResult, value: str, *, collected_at: datetime | None = None) -> None:
    lab.refresh_from_db()
    services.lab_correct(
        user=user,
        lab=lab,
        expected_version=lab.version,
        value=value,
        reason="typo",
        collected_at=collected_at,
        confirmed=True,
    )


def void(user, lab: LabResult) -> None:
    lab.refresh_from_db()
    services.lab_void(user=user, lab=lab, expected_version=lab.version, reason="wrong patient")


def loaded_labs(patient, from_day: int) -> tuple:
    infusions = _infusion_rows([patient.pk])
    return _load_inputs(infusions, ZoneInfo("UTC"), {patient.pk: from_day})[patient.pk].labs


def test_an_incremental_load_reads_only_the_windows_and_every_b_cell_lab(clinician, team):
    patient = build(clinician, team)
    every = load_inputs([patient.pk])[patient.pk].labs
    part = loaded_labs(patient, 20)
    assert len(part) < len(every)
    # The SQL windows are a day wider on each side (UTC), never narrower.
    days = {lab.day for lab in part if lab.analyte != "bcell"}
    assert {-10, -5, 6, 7, 8, 18, 19, 20} <= days
    assert not days & {0, 1, 2, 3, 12, 13, 14, 15}
    assert {lab.day for lab in part if lab.analyte == "bcell"} == set(range(2, 21))
    # What the windows hold is a subsequence of every lab, in the same order.
    assert [lab for lab in every if lab in set(part)] == list(part)


@pytest.mark.parametrize("day", [2, 5, 7, 12, 20, 23])
def test_a_panel_on_an_early_or_late_day_stores_what_a_full_recompute_gives(clinician, team, day):
    patient = build(clinician, team)
    enter(clinician, patient, local(day, 14), crp="320", anc="0.1", ldh="700", platelets="20")
    assert_stored_equals_scratch(patient)


def test_a_panel_after_a_day_without_labs_reads_the_day_before_it(clinician, team):
    """A write on day 20 recomputes day 19 too (the summary keeps it), from day 18's labs."""
    patient = build(clinician, team, days=[*range(-10, 19), 20])
    enter(clinician, patient, local(20, 15), crp="5", il6="5")
    assert_stored_equals_scratch(patient)
    day19 = DailyAssessment.objects.get(patient=patient, day=19)
    assert {f["code"]: f["day"] for f in day19.factors}["crp_d7"] == 18


def test_corrections_of_a_lab_before_the_landmark_window(clinician, team):
    patient = build(clinician, team)
    correct(clinician, lab_of(patient, "crp", 3), "260")  # value only
    assert_stored_equals_scratch(patient)
    correct(clinician, lab_of(patient, "anc", 1), "0.2", collected_at=local(15, 10))  # moved later
    assert_stored_equals_scratch(patient)
    correct(clinician, lab_of(patient, "il6", 17), "900", collected_at=local(2, 10))  # moved earlier
    assert_stored_equals_scratch(patient)


def test_voids_of_labs_before_the_landmark_window_and_in_it(clinician, team):
    patient = build(clinician, team)
    for analyte, day in (("crp", 4), ("ferritin", 0), ("il6", 7), ("aptt", 6), ("anc", 19)):
        void(clinician, lab_of(patient, analyte, day))
        assert_stored_equals_scratch(patient)


def test_b_cell_entries_corrections_and_voids(clinician, team):
    patient = build(clinician, team)
    enter(clinician, patient, local(1, 11), bcell="0")  # day 1: the first usable sample
    assert_stored_equals_scratch(patient)
    bcell = LabResult.objects.active().get(patient=patient, analyte="bcell", collected_at=local(9, 9))
    correct(clinician, bcell, "30")  # an early regeneration sample
    assert_stored_equals_scratch(patient)
    correct(clinician, bcell, "0")
    later = LabResult.objects.active().get(patient=patient, analyte="bcell", collected_at=local(14, 9))
    void(clinician, later)  # the suspected day goes, the regeneration moves
    assert_stored_equals_scratch(patient)


def test_the_pre_lymphodepletion_window_and_mrd(clinician, team):
    patient = build(clinician, team)
    enter(clinician, patient, local(-6, 7), ldh="1200", crp="90", platelets="15")  # a later LD set
    assert_stored_equals_scratch(patient)
    correct(clinician, lab_of(patient, "platelets", -8), "10")
    assert_stored_equals_scratch(patient)
    void(clinician, lab_of(patient, "ldh", -5))
    assert_stored_equals_scratch(patient)
    patient.refresh_from_db()
    services.patient_update(
        user=clinician,
        patient=patient,
        expected_version=patient.version,
        reason="MRD reported",
        baseline_mrd_pct=Decimal("2"),
        post_ld_mrd_pct=Decimal("40"),
    )
    assert_stored_equals_scratch(patient)
    enter(clinician, patient, local(20, 15), crp="10")  # an incremental write after an MRD change
    assert_stored_equals_scratch(patient)


@pytest.mark.parametrize(
    "changes",
    [
        {"lymphodepletion_start": date(2025, 2, 20)},  # the m-EASIX window moves to days −16…−9
        {"lymphodepletion_start": None},  # the approximate window, days −14…−1
        {"infusion_date": date(2025, 2, 27), "lymphodepletion_start": date(2025, 2, 22)},
    ],
)
def test_a_change_of_infusion_or_lymphodepletion_date_recomputes_from_every_lab(clinician, team, changes):
    patient = build(clinician, team)
    patient.refresh_from_db()
    services.patient_update(
        user=clinician, patient=patient, expected_version=patient.version, reason="date fixed", **changes
    )
    assert_stored_equals_scratch(patient)
    enter(clinician, patient, local(18, 15), crp="500")
    assert_stored_equals_scratch(patient)


def test_voiding_the_last_days_labs_falls_back_to_every_lab(clinician, team):
    """The data ends on day 20 by labs alone; once they go, the last data day is day 12.

    Observations end on day 8 and B-cell labs on day 9, so the windows of a write on day
    20 (days 18 on, 6–8, −12…−5, B-cell) would say day 9: every lab is loaded instead.
    """
    patient = build(clinician, team, days=[*range(-10, 13), 20], obs_days=range(0, 9), bcell_until=9)
    last = list(LabResult.objects.active().filter(patient=patient, collected_at__gte=local(20, 0)))
    for lab in last[:-1]:
        void(clinician, lab)
        assert_stored_equals_scratch(patient)
    # The windows of a write on day 20 (days 18 on) would hold no lab but B-cell ones.
    void(clinician, last[-1])
    assert_stored_equals_scratch(patient)
    assert PatientSummary.objects.get(patient=patient).last_data_day == 12
    infusions = _infusion_rows([patient.pk])
    every = _load_inputs(infusions, ZoneInfo("UTC"))[patient.pk]
    in_windows = tuple(lab for lab in every.labs if in_lab_windows(lab, lab_windows(20, -5)))
    assert last_data_day(replace(every, labs=in_windows)) == 9
    assert not windowed_labs_suffice(replace(every, labs=in_windows), 20)
    windowed = _load_inputs(infusions, ZoneInfo("UTC"), {patient.pk: 20})[patient.pk]
    assert windowed.labs == every.labs  # reloaded whole


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])  # UTC+14, UTC−11
def test_window_edges_in_a_site_zone_far_from_utc(clinician, team, zone):
    tz = ZoneInfo(zone)
    with override_settings(TIME_ZONE=zone):
        patient = build(clinician, team, tz=tz)
        # Labs a minute after the local midnight and a minute before it, at the windows' edges.
        for day, hour, minute in ((5, 0, 1), (8, 23, 59), (9, 0, 1), (17, 23, 59), (18, 0, 1), (-13, 0, 1)):
            enter(clinician, patient, local(day, hour, minute, tz=tz), il6="700", crp="15")
            assert_stored_equals_scratch(patient)
        enter(clinician, patient, local(20, 12, tz=tz), anc="2.0")
        assert_stored_equals_scratch(patient)
        void(
            clinician,
            LabResult.objects.active().get(
                patient=patient, analyte="il6", collected_at=local(18, 0, 1, tz=tz)
            ),
        )
        assert_stored_equals_scratch(patient)


def test_a_panel_post_reads_each_input_once(clinician, team, client):
    """The POST's statements: no repeated read of the site parameters, model, summary, infusion."""
    patient = build(clinician, team)
    client.force_login(clinician)
    when = local(20, 16)
    data = {"collected_date": when.date().isoformat(), "collected_time": when.strftime("%H:%M")}
    data.update({"crp_value": "30", "crp_unit": "mg/L", "anc_value": "1.5", "anc_unit": "10^9/L"})
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(f"/patients/{patient.mrn}/labs/new/", data)
    assert response.status_code == 302, response.content[:500]
    sqls = [q["sql"] for q in ctx.captured_queries]

    def reads(table: str) -> int:
        return sum(1 for sql in sqls if sql.startswith("SELECT") and f'FROM "{table}"' in sql)

    assert reads("patients_siteparameters") == 1  # the usual units and the clinical parameters at once
    assert reads("scoring_scoremodel") == 1
    assert reads("scoring_patientsummary") == 1
    assert reads("patients_infusion") == 0  # read with the patient under its lock
    assert_stored_equals_scratch(patient)


def test_a_recompute_inside_a_write_makes_no_savepoint_of_its_own(clinician, team):
    patient = build(clinician, team)
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        recompute_patients([patient.pk], since={patient.pk: local(20)})
    assert not [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SAVEPOINT")]
