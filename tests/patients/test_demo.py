"""The demo cohort and accounts (SPEC 8.3)."""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from crsrisk.accounts.models import Profile
from patients.demo import DEMO_TEAM, build_cohort, seed_demo
from patients.models import ClinicalEvent, LabResult, Patient
from scoring.models import PatientSummary
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db


def authenticate(*, username: str, password: str) -> bool:
    return get_user_model().objects.get(username=username).check_password(password)


TODAY = date(2026, 1, 15)
PASSWORD = "demo-password-2025!"


@pytest.mark.nodb
def test_build_is_reproducible_and_seed_dependent():
    a = build_cohort(seed=7, today=TODAY, n_patients=30)
    b = build_cohort(seed=7, today=TODAY, n_patients=30)
    c = build_cohort(seed=8, today=TODAY, n_patients=30)
    assert a.rows == b.rows
    assert a.rows["labs"] != c.rows["labs"]


@pytest.mark.nodb
def test_build_shape():
    cohort = build_cohort(today=TODAY)
    patients = cohort.rows["patients"]
    assert len(patients) == 125
    assert patients[0][:2] == ["DEMO-0001", "Synthetic Patient 001"]
    infusions = [date.fromisoformat(p[7]) for p in patients]
    on_ward = [d for d in infusions if -2 <= (TODAY - d).days <= 45]
    assert 5 <= len(on_ward) <= 12
    assert all(date.fromisoformat(e[1]) <= TODAY for e in cohort.rows["events"])
    assert all(r[1][:10] < TODAY.isoformat() for r in cohort.rows["labs"])


def test_demo_cohort_marginals_and_recompute():
    seed_demo(today=TODAY, password=PASSWORD)
    patients = Patient.objects.all()
    assert patients.count() == 125 and all(p.synthetic for p in patients)
    assert {p.care_team.name for p in patients.select_related("care_team")} == {DEMO_TEAM}
    summaries = list(PatientSummary.objects.all())
    n = len(summaries)
    any_crs = sum(s.max_crs_grade >= 1 for s in summaries) / n
    severe = sum(s.severe_crs for s in summaries) / n
    assert 0.57 <= any_crs <= 0.77
    assert 0.09 <= severe <= 0.19
    # The day-7 score separates severe CRS (the paper reports an apparent AUC of 0.875).
    sev = [s.day7_points for s in summaries if s.severe_crs]
    non = [s.day7_points for s in summaries if not s.severe_crs]
    auc = sum((a > b) + 0.5 * (a == b) for a in sev for b in non) / (len(sev) * len(non))
    assert auc >= 0.75
    # CR about 82 % among patients followed past day 35; early regeneration goes with relapse.
    followed = {s.patient_id for s in summaries if s.last_data_day >= 35}
    cr = set(ClinicalEvent.objects.filter(kind="cr").values_list("patient_id", flat=True))
    assert 0.72 <= len(cr & followed) / len(followed) <= 0.9
    relapse = set(ClinicalEvent.objects.filter(kind="relapse").values_list("patient_id", flat=True))
    early = [s.patient_id for s in summaries if s.patient_id in cr and s.bcell_status == "early_regeneration"]
    other = [s.patient_id for s in summaries if s.patient_id in cr and s.bcell_status != "early_regeneration"]
    rate_early = sum(p in relapse for p in early) / len(early)
    rate_other = sum(p in relapse for p in other) / len(other)
    assert rate_early >= 2 * rate_other
    for patient in patients[:10]:
        assert_stored_equals_scratch(patient)


def test_demo_is_idempotent_and_password_resets():
    first = seed_demo(today=TODAY, n_patients=8, password=PASSWORD)
    assert first.created_patients == 8 and first.password == PASSWORD
    labs = LabResult.objects.count()
    again = seed_demo(today=date(2026, 2, 1), n_patients=8)
    assert (again.created_patients, again.existing_patients, again.password) == (0, 8, None)
    assert LabResult.objects.count() == labs
    assert authenticate(username="demo-clinician", password=PASSWORD)
    seed_demo(today=TODAY, n_patients=8, password="another-password-42")
    assert authenticate(username="demo-hematologist", password="another-password-42")
    assert not authenticate(username="demo-hematologist", password=PASSWORD)
    users = get_user_model().objects.filter(username__startswith="demo-")
    assert {u.username: u.groups.get().name for u in users} == {
        "demo-clinician": "clinician",
        "demo-hematologist": "hematologist",
        "demo-admin": "admin",
    }
    assert set(
        Profile.objects.get(user__username="demo-clinician").care_teams.values_list("name", flat=True)
    ) == {DEMO_TEAM}
    assert not Profile.objects.get(user__username="demo-admin").care_teams.exists()


def test_demo_command_if_empty_and_generated_password():
    out = StringIO()
    call_command("demo", "--patients", "3", "--today", "2026-01-15", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "demo-clinician" in text and "password (generated" in text
    out = StringIO()
    err = StringIO()
    call_command("demo", "--if-empty", stdout=out, stderr=err)
    assert "nothing seeded" in err.getvalue() and Patient.objects.count() == 3
    out = StringIO()
    call_command("demo", "--patients", "3", "--today", "2026-01-15", stdout=out, stderr=StringIO())
    assert "password unchanged" in out.getvalue()
    with pytest.raises(CommandError, match="password"):
        call_command("demo", "--patients", "3", "--password", "short", stdout=StringIO(), stderr=StringIO())


def test_migrations_create_no_demo_accounts():
    assert not get_user_model().objects.filter(username__startswith="demo-").exists()
