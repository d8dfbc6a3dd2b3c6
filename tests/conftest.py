"""Shared fixtures: users with roles, registered patients."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from datetime import date

import pytest
from django.contrib.auth.models import Group, User

from crsrisk.accounts.models import Profile
from crsrisk.accounts.services import clinical_grant_bootstrap
from patients import services
from patients.models import CareTeam, Patient


def make_user(username: str, role: str, teams: tuple[CareTeam, ...] = (), all_teams: bool = False) -> User:
    """A user in the role's group, member of ``teams``; a clinical role comes with an approved grant.

    Accounts made through the admin pages wait for a hematologist's approval (issue 9); the
    fixtures stand for accounts whose access was approved long ago.
    """
    user = User.objects.create_user(username=username, password="correct-horse-battery-9")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    profile = Profile.objects.create(user=user, all_care_teams=all_teams)
    profile.care_teams.set(teams)
    if role in ("clinician", "hematologist"):
        clinical_grant_bootstrap(user=user, note="test fixture")
        profile.refresh_from_db()  # the cached profile must not write an old grant back
    return user


@pytest.fixture(autouse=True)
def _default_language_after_each_test() -> Iterator[None]:
    """A request in another language leaves it active in the thread (LocaleMiddleware does
    not reset it), so later tests would read Chinese messages: reset it after every test."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture(autouse=True)
def _reference_data_after_flush(request: pytest.FixtureRequest) -> None:
    """Re-create the migrations' reference data (role groups, provisional-v0) for transactional tests.

    A transactional test (``live_server``, ``transactional_db``) starts after an
    earlier one flushed every table, the data migrations' rows included.
    """
    marker = request.node.get_closest_marker("django_db")
    by_marker = marker is not None and bool(marker.kwargs.get("transaction"))
    if not by_marker and not {"transactional_db", "live_server"} & set(request.fixturenames):
        return
    if not by_marker:
        request.getfixturevalue("transactional_db")
    from django.apps import apps

    for module in ("crsrisk.accounts.migrations.0002_role_groups", "scoring.migrations.0002_provisional_v0"):
        importlib.import_module(module).forward(apps, None)


@pytest.fixture
def team(db: None) -> CareTeam:
    return CareTeam.objects.create(name="Ward 7")


@pytest.fixture
def other_team(db: None) -> CareTeam:
    return CareTeam.objects.create(name="Ward 9")


@pytest.fixture
def clinician(team: CareTeam) -> User:
    return make_user("clin", "clinician", (team,))


@pytest.fixture
def hematologist(team: CareTeam) -> User:
    return make_user("hema", "hematologist", (team,))


@pytest.fixture
def site_admin(db: None) -> User:
    return make_user("admin1", "admin")


@pytest.fixture
def patient(clinician: User, team: CareTeam) -> Patient:
    return services.patient_register(
        user=clinician,
        mrn="P001",
        name="Test Patient",
        infusion_date=date(2025, 3, 1),
        care_team=team,
        baseline_mrd_pct=None,
        post_ld_mrd_pct=None,
    )


def ci_requires(component: str) -> None:
    """Fail under CI=true, skip with a notice elsewhere, when a component is missing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{component} is required under CI=true but is missing", pytrace=False)
    print(f"\nNOTICE: skipping, {component} is not available on this machine")  # noqa: T201
    pytest.skip(f"{component} is not available")


def run_queued_jobs() -> list[object]:
    """Run every task waiting in django-q2's ORM queue, as a worker would, in this process."""
    from django.utils.module_loading import import_string
    from django_q.models import OrmQ

    results = []
    while queued := list(OrmQ.objects.order_by("pk")):
        for entry in queued:
            task = entry.task
            func = import_string(task["func"]) if isinstance(task["func"], str) else task["func"]
            results.append(func(*task["args"], **task["kwargs"]))
            entry.delete()
    return results
