"""Incremental recompute equals a from-scratch one (SPEC 4): properties, pure and stored."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients import services
from patients.models import LabResult
from scoring.assess import (
    PatientInputs,
    assess_patient,
    in_lab_windows,
    lab_windows,
    last_data_day,
    windowed_labs_suffice,
)
from scoring.rules.score import PROVISIONAL_V0
from scoring.rules.types import Lab, Observation, SiteParams
from tests.invariants import assert_stored_equals_scratch

INFUSION = date(2025, 3, 1)
ANALYTES = ("anc", "crp", "ferritin", "il6", "aptt", "ldh", "platelets", "bcell")
VALUES = {"anc": "0.3", "crp": "250", "ferritin": "12000", "il6": "600", "aptt": "60", "ldh": "300"}


def collected(day: int, hour: int) -> datetime:
    return datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=day, hours=hour)


labs_st = st.lists(
    st.builds(
        lambda analyte, day, hour, value: Lab(analyte, day, collected(day, hour), Decimal(value)),
        st.sampled_from(ANALYTES),
        st.integers(-3, 14),
        st.integers(0, 23),
        st.integers(0, 20000),
    ),
    max_size=40,
)
observations_st = st.dictionaries(
    st.integers(0, 14),
    st.builds(
        lambda tmax, toci: (Decimal(tmax) / 10, toci),
        st.integers(365, 405),
        st.booleans(),
    ),
    max_size=10,
).map(
    lambda obs: tuple(Observation(day=d, tmax_c=t, tocilizumab=toci) for d, (t, toci) in sorted(obs.items()))
)


def inputs(labs: list[Lab], observations: tuple[Observation, ...]) -> PatientInputs:
    return PatientInputs(
        infusion_date=INFUSION,
        baseline_mrd_pct=Decimal(8),
        post_ld_mrd_pct=None,
        lymphodepletion_day=-5,
        labs=tuple(labs),
        observations=observations,
    )


@pytest.mark.nodb
@given(labs=labs_st, observations=observations_st, from_day=st.integers(0, 16))
def test_rows_from_a_day_equal_the_same_days_of_a_full_assessment(labs, observations, from_day):
    full = assess_patient(inputs(labs, observations), PROVISIONAL_V0, SiteParams())
    part = assess_patient(inputs(labs, observations), PROVISIONAL_V0, SiteParams(), from_day=from_day)
    assert part.rows == tuple(r for r in full.rows if r.day >= part.rows_from)
    assert part.rows_from <= max(0, from_day)
    assert part.summary == full.summary
    assert part.alerts == full.alerts


@pytest.mark.nodb
@given(before=labs_st, added=labs_st, observations=observations_st, from_day=st.integers(0, 14))
def test_labs_of_a_day_never_change_the_rows_of_earlier_days(before, added, observations, from_day):
    """What makes a lab write's recompute start at its day: the rows are causal in the labs.

    (Days the write adds past the old last data day are new rows, computed too.)
    """
    later = [lab for lab in added if lab.day >= from_day]
    old = assess_patient(inputs(before, observations), PROVISIONAL_V0, SiteParams())
    new = assess_patient(inputs(before + later, observations), PROVISIONAL_V0, SiteParams())
    kept = {r.day: r for r in old.rows if r.day < from_day}
    assert kept == {r.day: r for r in new.rows if r.day in kept}


_mrns = itertools.count()


@pytest.mark.django_db
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(("enter", "correct", "void")),
            st.sampled_from(tuple(VALUES)),
            st.integers(-2, 12),
            st.integers(0, 23),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_every_lab_write_stores_what_a_from_scratch_recompute_gives(clinician, team, steps):
    patient = services.patient_register(
        user=clinician,
        mrn=f"INC{next(_mrns):04d}",
        name="Incremental",
        infusion_date=INFUSION,
        care_team=team,
        baseline_mrd_pct=Decimal(8),
    )
    for action, analyte, day, hour in steps:
        live = list(LabResult.objects.active().filter(patient=patient).order_by("id"))
        if action == "enter" or not live:
            when = collected(day, hour) + timedelta(seconds=len(live))
            services.lab_record(
                user=clinician,
                patient=patient,
                analyte=analyte,
                value=VALUES[analyte],
                collected_at=when,
                confirmed=True,
            )
        elif action == "correct":
            lab = live[day % len(live)]
            services.lab_correct(
                user=clinician,
                lab=lab,
                expected_version=lab.version,
                value=VALUES[lab.analyte],
                collected_at=collected(day, hour) + timedelta(seconds=lab.pk),
                reason="wrong time",
                confirmed=True,
            )
        else:
            lab = live[day % len(live)]
            services.lab_void(user=clinician, lab=lab, expected_version=lab.version, reason="wrong patient")
        assert_stored_equals_scratch(patient)


# --- the labs an incremental recompute loads (scoring.assess.lab_windows) -------------------

window_labs_st = st.lists(
    st.builds(
        lambda analyte, day, hour, value, comparator: Lab(
            analyte, day, collected(day, hour), Decimal(value), comparator
        ),
        st.sampled_from(ANALYTES),
        st.integers(-20, 24),
        st.integers(0, 23),
        st.integers(0, 20000),
        st.sampled_from((None, None, None, "<", ">=")),
    ),
    max_size=60,
)
wide_observations_st = st.dictionaries(
    st.integers(-2, 20),
    st.builds(lambda tmax, toci: (Decimal(tmax) / 10, toci), st.integers(365, 405), st.booleans()),
    max_size=12,
).map(
    lambda obs: tuple(Observation(day=d, tmax_c=t, tocilizumab=toci) for d, (t, toci) in sorted(obs.items()))
)


def with_labs(base: PatientInputs, labs: list[Lab]) -> PatientInputs:
    return replace(base, labs=tuple(labs))


@pytest.mark.nodb
@settings(max_examples=400)
@given(
    labs=window_labs_st,
    observations=wide_observations_st,
    # A day, or a day next to the last data day (a write on the last day is the usual one).
    from_choice=st.one_of(st.integers(0, 26), st.integers(-2, 2).map(lambda k: ("last", k))),
    ld_day=st.one_of(st.none(), st.integers(-14, -1)),
    extra=st.lists(st.booleans(), max_size=60),
)
def test_the_labs_of_the_windows_assess_as_every_lab(labs, observations, from_choice, ld_day, extra):
    """An incremental recompute's labs (the windows, B-cell, and any more) give the same results.

    When they do not suffice (the data now ends before the write's day), the service loads
    every lab; that happens exactly when the whole data ends before that day.
    """
    base = replace(inputs(labs, observations), lymphodepletion_day=ld_day, post_ld_mrd_pct=Decimal(3))
    from_day = from_choice if isinstance(from_choice, int) else max(0, last_data_day(base) + from_choice[1])
    windows = lab_windows(from_day, ld_day)
    # The windows plus any other labs (the SQL filter widens each window by a day).
    kept = [
        lab for i, lab in enumerate(labs) if in_lab_windows(lab, windows) or (i < len(extra) and extra[i])
    ]
    partial = with_labs(base, kept)
    suffice = windowed_labs_suffice(partial, from_day)
    assert suffice == (last_data_day(base) >= from_day)
    if not suffice:
        return
    full = assess_patient(base, PROVISIONAL_V0, SiteParams(), from_day=from_day)
    part = assess_patient(partial, PROVISIONAL_V0, SiteParams(), from_day=from_day)
    assert part.rows_from == full.rows_from
    assert part.rows == full.rows
    assert part.summary == full.summary
    assert part.alerts == full.alerts
    assert part.day7 == full.day7


@pytest.mark.nodb
def test_the_windows_leave_out_the_days_no_result_from_the_write_on_reads():
    windows = lab_windows(40, -5)
    assert windows == ((-12, -5), (6, 8), (38, None))
    assert lab_windows(9, None) == ((-14, -1), (6, None))  # the landmark joins the running days
    old = Lab("crp", 20, collected(20, 8), Decimal(300))
    assert not in_lab_windows(old, windows)
    assert in_lab_windows(replace(old, analyte="bcell"), windows)  # B-cell status runs from day 1
    assert in_lab_windows(replace(old, day=7), windows)
    assert in_lab_windows(replace(old, day=-9), windows)
