"""Incremental recompute equals a from-scratch one (SPEC 4): properties, pure and stored."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients import services
from patients.models import LabResult
from scoring.assess import PatientInputs, assess_patient
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
