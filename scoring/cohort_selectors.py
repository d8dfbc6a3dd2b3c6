"""Reads for the cohort analytics page (SPEC 6): the stored results as pure inputs.

A constant number of queries whatever the cohort size: the active model, the site
parameters, the summaries, the live events, the live observation days, the per-day
B-cell status up to the landmark and one count of the visible patients. Only patients of the user's care
teams count; voided events do not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from crsrisk.accounts.roles import visible_patients
from patients.models import ClinicalEvent, EventKind, Observation, SiteParameters
from scoring.cohort import LANDMARK_DAY, CohortPatient
from scoring.models import DailyAssessment, PatientSummary, ScoreModel
from scoring.rules import astct, bcell
from scoring.rules.days import day_of_date
from scoring.rules.types import Event

ESTABLISHED_REGENERATION = (bcell.EARLY, bcell.LATE)


@dataclass(frozen=True)
class CohortInputs:
    model: ScoreModel
    crs_outcome_window: int
    patients: list[CohortPatient]
    without_summary: int  # visible patients with no stored results under the active model


def cohort_patients(user: AbstractBaseUser | AnonymousUser) -> CohortInputs:
    """The user's patients with their stored results under the active model, as pure inputs.

    The B-cell group is read from the stored status *as of the landmark day* (the
    last per-day row on or before it), so that a regeneration confirmed only after
    the landmark does not decide the group: that would look into the future.
    """
    model = ScoreModel.objects.active()
    window = SiteParameters.load().crs_outcome_window
    visible = visible_patients(user).values("pk")
    summaries = list(
        PatientSummary.objects.filter(model=model, patient__in=visible).values(
            "patient_id",
            "patient__infusion__infusion_date",
            "day7_points",
            "day7_band",
            "day7_complete",
            "max_crs_grade",
            "severe_crs",
            "severe_observed_day",
            "last_data_day",
        )
    )
    # Every patient has an infusion (day 0); a row without one cannot place its events.
    summaries = [s for s in summaries if s["patient__infusion__infusion_date"] is not None]
    infusion = {s["patient_id"]: s["patient__infusion__infusion_date"] for s in summaries}
    events: dict[int, list[Event]] = defaultdict(list)
    for patient_id, kind, when, detail in (
        ClinicalEvent.objects.active()
        .filter(patient__in=visible)
        .order_by("patient_id", "date", "kind")
        .values_list("patient_id", "kind", "date", "detail")
    ):
        if patient_id in infusion:
            events[patient_id].append(Event(kind, day_of_date(when, infusion[patient_id]), detail))
    observed: dict[int, list[int]] = defaultdict(list)
    for patient_id, when in (
        Observation.objects.active().filter(patient__in=visible).values_list("patient_id", "date")
    ):
        if patient_id in infusion:
            observed[patient_id].append(day_of_date(when, infusion[patient_id]))
    at_landmark: dict[int, tuple[str, int | None]] = {}
    for patient_id, status, regeneration_day in (
        DailyAssessment.objects.filter(model=model, patient__in=visible, day__lte=LANDMARK_DAY)
        .order_by("patient_id", "day")
        .values_list("patient_id", "bcell_status", "first_regeneration_day")
    ):
        at_landmark[patient_id] = (status, regeneration_day)  # the last row wins
    patients = []
    for s in summaries:
        pid = s["patient_id"]
        evs = tuple(events.get(pid, ()))
        status, regeneration_day = at_landmark.get(pid, (bcell.NOT_ASSESSED, None))
        deaths = [e.day for e in evs if e.kind == EventKind.DEATH]
        unobserved = astct.outcome_unobserved_days(
            observed.get(pid, ()),
            window=window,
            onset_day=s["severe_observed_day"] if s["severe_crs"] else None,
            death_day=min(deaths) if deaths else None,
        )
        patients.append(
            CohortPatient(
                key=str(pid),
                day7_points=s["day7_points"],
                day7_band=s["day7_band"],
                day7_complete=s["day7_complete"],
                max_crs_grade=s["max_crs_grade"],
                severe_crs=s["severe_crs"],
                # The same rule as the local fit (SPEC 5): every day observed up to the end
                # of the window, or to severe-CRS onset, or to death.
                crs_outcome_complete=not unobserved,
                bcell_assessed_by_landmark=status != bcell.NOT_ASSESSED,
                regeneration_day=regeneration_day if status in ESTABLISHED_REGENERATION else None,
                regeneration_unconfirmed_at_landmark=status == bcell.REGENERATION_SUSPECTED,
                last_known_day=max([s["last_data_day"], *(e.day for e in evs)]),
                events=evs,
            )
        )
    visible_count = len(infusion)
    return CohortInputs(
        model=model,
        crs_outcome_window=window,
        patients=patients,
        without_summary=_count_without_summary(user, visible_count),
    )


def _count_without_summary(user: AbstractBaseUser | AnonymousUser, with_summary: int) -> int:
    """Visible patients that have no stored results yet (one count query)."""
    return max(visible_patients(user).count() - with_summary, 0)
