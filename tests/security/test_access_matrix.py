"""The access matrix: every URL pattern against every role (SPEC 7).

Each route of the project (web pages, the JSON API, the Django admin, i18n) is requested
as anonymous, a clinician of the patient's team, a clinician of another team, a
hematologist of the patient's team and an admin, and the answer is compared with the
table below. A route with no entry in the table fails ``test_every_route_has_an_entry``:
whoever adds a route decides, here, who may use it.

Outcomes: ``LOGIN`` a redirect to a login page; ``ALLOW`` processed (200/201/204, a
redirect elsewhere, or a 400 for the empty form the matrix posts); or a status code
(401, 403, 404, 405). The patient in every URL belongs to the team clinician's team.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client
from django.utils import timezone

from crsrisk.accounts import services as account_services
from crsrisk.jobs.models import ImportUpload, Job
from patients import services
from patients.imports import record_transfer
from patients.models import CareTeam, Patient
from scoring.models import Alert
from tests.conftest import make_user
from tests.security.matrix import ALLOW, LOGIN, ROLES, Route, build_path, classify, walk

# (anonymous, clinician of the team, clinician of another team, hematologist, admin,
#  an admin-made all-teams hematologist not yet approved)
CLINICAL_PAGE = (LOGIN, ALLOW, 404, ALLOW, 403, 403)  # a patient's page: other teams get 404
HEMATOLOGIST_PATIENT_PAGE = (LOGIN, 403, 403, ALLOW, 403, 403)
CLINICAL_LIST = (LOGIN, ALLOW, ALLOW, ALLOW, 403, 403)  # lists only one's own patients
HEMATOLOGIST_PAGE = (LOGIN, 403, 403, ALLOW, 403, 403)
ADMIN_PAGE = (LOGIN, 403, 403, 403, ALLOW, 403)
ANY_SIGNED_IN = (LOGIN, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW)
CLINICAL_SIGNED_IN = (LOGIN, ALLOW, ALLOW, ALLOW, 403, 403)  # one's own API token: clinical access only
PUBLIC = (ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW)
DJANGO_ADMIN = (LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN)  # no role account is staff
API_PATIENT = (401, ALLOW, 404, ALLOW, 403, 403)  # anonymous: 401 with WWW-Authenticate: Token
API_HEMATOLOGIST_PATIENT = (401, 403, 403, ALLOW, 403, 403)  # role refused before the patient is looked up
API_LIST = (401, ALLOW, ALLOW, ALLOW, 403, 403)
API_HEMATOLOGIST = (401, 403, 403, ALLOW, 403, 403)
API_SIGNED_IN = (401, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW)

GET, POST = "get", "post"

EXPECTED: dict[str, tuple[str, tuple[Any, ...]]] = {  # keyed by URL name
    # --- site ------------------------------------------------------------------------------
    "home": (GET, (LOGIN, ALLOW, ALLOW, ALLOW, ALLOW, 403)),  # unapproved: the "no role yet" page
    "about": (GET, ANY_SIGNED_IN),
    "health": (GET, PUBLIC),
    "set_language": (POST, PUBLIC),
    # --- accounts --------------------------------------------------------------------------
    "accounts:login": (GET, PUBLIC),  # signed-in users are sent home
    "accounts:logout": (POST, (LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN)),  # back to the login page
    "accounts:password-change": (GET, ANY_SIGNED_IN),
    "accounts:user-list": (GET, ADMIN_PAGE),
    "accounts:user-create": (GET, ADMIN_PAGE),
    "accounts:user-edit": (GET, ADMIN_PAGE),
    "accounts:user-deactivate": (POST, ADMIN_PAGE),
    "accounts:user-reactivate": (POST, ADMIN_PAGE),
    "accounts:user-password": (GET, ADMIN_PAGE),
    "accounts:user-unlock": (POST, ADMIN_PAGE),
    # An admin may revoke a token, never issue one (issue 9): there is no such route.
    "accounts:token-revoke": (POST, ADMIN_PAGE),
    "accounts:security-audit": (GET, ADMIN_PAGE),
    "accounts:care-team-list": (GET, ADMIN_PAGE),  # team names only, no clinical data
    "accounts:care-team-rename": (GET, ADMIN_PAGE),
    # One's own account and token: only the owner creates a token, and only with clinical access.
    "accounts:account": (GET, ANY_SIGNED_IN),
    "accounts:token-create": (POST, CLINICAL_SIGNED_IN),  # the empty form: 200 with its errors
    "accounts:own-token-revoke": (POST, ANY_SIGNED_IN),  # one's own only; none: a message
    # Approvals of clinical access: hematologists with clinical access, never the admin or the
    # account itself. The world's pending grant is the unapproved all-teams hematologist's.
    "accounts:grant-list": (GET, HEMATOLOGIST_PAGE),
    "accounts:grant-approve": (POST, HEMATOLOGIST_PAGE),
    "accounts:grant-refuse": (POST, HEMATOLOGIST_PAGE),
    # --- ward pages (patients/urls.py) ------------------------------------------------------
    "patients:ward": (GET, CLINICAL_LIST),
    "patients:register": (GET, CLINICAL_LIST),
    "patients:detail": (GET, CLINICAL_PAGE),
    "patients:edit": (GET, CLINICAL_PAGE),
    "patients:history": (GET, CLINICAL_PAGE),
    "patients:lab-entry": (GET, CLINICAL_PAGE),
    "patients:lab-correct": (GET, CLINICAL_PAGE),
    "patients:lab-void": (POST, CLINICAL_PAGE),
    "patients:observation-entry": (GET, CLINICAL_PAGE),
    "patients:observation-void": (POST, CLINICAL_PAGE),
    "patients:event-entry": (GET, HEMATOLOGIST_PATIENT_PAGE),
    "patients:event-void": (POST, HEMATOLOGIST_PATIENT_PAGE),
    "patients:override": (GET, HEMATOLOGIST_PATIENT_PAGE),
    "patients:override-void": (POST, HEMATOLOGIST_PATIENT_PAGE),
    "patients:alert-ack": (POST, HEMATOLOGIST_PATIENT_PAGE),
    # import and export (patients/transfer_views.py): hematologists, their own teams' patients;
    # every import is an upload of one's own, checked and imported by background jobs
    "patients:import": (GET, HEMATOLOGIST_PAGE),
    "patients:import-upload": (GET, HEMATOLOGIST_PAGE),  # the hematologist's own upload
    "patients:import-upload-confirm": (POST, HEMATOLOGIST_PAGE),  # no valid digest: refused, redirected
    "patients:import-job": (GET, (LOGIN, 403, 403, 404, 403, 403)),  # not an import job of one's own
    "patients:import-result": (GET, HEMATOLOGIST_PAGE),  # one's own imports only (else 404)
    "patients:export": (GET, HEMATOLOGIST_PAGE),
    # the earlier addresses (session preview, separate large import) redirect to the above
    "patients:import-preview": (GET, HEMATOLOGIST_PAGE),  # nothing waiting: back to the upload page
    "patients:import-confirm": (POST, HEMATOLOGIST_PAGE),  # imports nothing: back to the upload page
    "patients:upload": (GET, HEMATOLOGIST_PAGE),
    "patients:upload-preview": (GET, HEMATOLOGIST_PAGE),
    "patients:upload-confirm": (POST, HEMATOLOGIST_PAGE),
    # --- score models and site parameters (scoring/urls.py) ---------------------------------
    "scoring:model-list": (GET, HEMATOLOGIST_PAGE),
    "scoring:model-detail": (GET, HEMATOLOGIST_PAGE),
    "scoring:model-report": (GET, HEMATOLOGIST_PAGE),
    "scoring:model-activate": (POST, HEMATOLOGIST_PAGE),
    "scoring:model-new": (GET, HEMATOLOGIST_PAGE),
    "scoring:model-edit": (GET, HEMATOLOGIST_PAGE),  # provisional-v0 is active: redirect to its card
    "scoring:model-retire": (GET, HEMATOLOGIST_PAGE),
    "scoring:site-parameters": (GET, HEMATOLOGIST_PAGE),
    "scoring:cohort": (GET, HEMATOLOGIST_PAGE),  # aggregates only: no MRN, no patient record
    "scoring:model-fit": (POST, HEMATOLOGIST_PAGE),  # an empty form: refused with its errors (400)
    # --- background jobs (crsrisk/jobs/urls.py): hematologists; a job names no patient ------
    "jobs:list": (GET, HEMATOLOGIST_PAGE),
    "jobs:detail": (GET, HEMATOLOGIST_PAGE),
    # --- JSON API (patients/api/urls.py) ----------------------------------------------------
    "api:patient-list": (GET, API_LIST),
    "api:patient-detail": (GET, API_PATIENT),
    "api:lab-list": (GET, API_PATIENT),
    "api:lab-detail": (GET, API_PATIENT),
    "api:lab-void": (POST, API_PATIENT),
    "api:observation-list": (GET, API_PATIENT),
    "api:observation-detail": (GET, API_PATIENT),
    "api:observation-void": (POST, API_PATIENT),
    "api:event-list": (GET, API_PATIENT),  # reading events: clinicians too; writing: hematologists
    "api:event-void": (POST, API_HEMATOLOGIST_PATIENT),
    "api:override-list": (GET, API_PATIENT),
    "api:override-void": (POST, API_HEMATOLOGIST_PATIENT),
    "api:assessment-list": (GET, API_PATIENT),
    "api:summary": (GET, API_PATIENT),
    "api:patient-fhir": (GET, API_HEMATOLOGIST_PATIENT),  # an export: hematologists (SPEC 7)
    "api:fhir": (POST, API_HEMATOLOGIST),
    "api:schema": (GET, API_SIGNED_IN),  # describes the endpoints, holds no data
    "api:docs": (GET, ANY_SIGNED_IN),
    "api:<api/v1/^(?P<path>.*)$>": (GET, (404, 404, 404, 404, 404, 404)),  # JSON 404 for unknown API paths
}


def _admin_site_entries() -> dict[str, tuple[str, tuple[Any, ...]]]:
    """The Django admin: the same answer for every route, since no role account is staff."""
    entries = {
        "admin:login": (GET, PUBLIC),
        "admin:logout": (POST, PUBLIC),
        "admin:index": (GET, DJANGO_ADMIN),
        "admin:password_change": (GET, DJANGO_ADMIN),
        "admin:password_change_done": (GET, DJANGO_ADMIN),
        "admin:autocomplete": (GET, DJANGO_ADMIN),
        "admin:jsi18n": (GET, DJANGO_ADMIN),
        "admin:view_on_site": (GET, DJANGO_ADMIN),
        "admin:app_list": (GET, DJANGO_ADMIN),
        "admin:<admin/(?P<url>.*)$>": (GET, DJANGO_ADMIN),
        "admin:auth_user_password_change": (GET, DJANGO_ADMIN),
    }
    for label in ADMIN_MODELS:
        app, model = label.split(".")
        for suffix in ("changelist", "add", "history", "delete", "change"):
            entries[f"admin:{app}_{model}_{suffix}"] = (GET, DJANGO_ADMIN)
        entries[f"admin:<admin/{app}/{model}/<path:object_id>/>"] = (GET, DJANGO_ADMIN)
    return entries


# Every model in the Django admin, listed on purpose: registering one more must be a decision.
ADMIN_MODELS = (
    "auth.user",
    "auth.group",
    # No patient data (issue 9): only reference data without patient values, read-only.
    "patients.careteam",
    "patients.siteparameters",
    "scoring.scoremodel",
    # django-q2's result pages, for the superuser who operates the workers (docs/deploy.md).
    # Schedule and OrmQ are not registered: they would let an admin queue any callable (f2).
    "django_q.success",
    "django_q.failure",
)

EXPECTED.update(_admin_site_entries())


def expected() -> dict[str, tuple[str, tuple[Any, ...]]]:
    return EXPECTED


# --- the world every request runs in --------------------------------------------------------


@pytest.fixture
def matrix_world(db: None) -> dict[str, Any]:
    team = CareTeam.objects.create(name="Ward 7")
    other = CareTeam.objects.create(name="Ward 9")
    users = {
        "anonymous": None,
        "team_clinician": make_user("clin", "clinician", (team,)),
        "other_clinician": make_user("clin9", "clinician", (other,)),
        "hematologist": make_user("hema", "hematologist", (team,)),
        "admin": make_user("admin1", "admin"),
    }
    unapproved = account_services.user_create(
        actor=users["admin"],
        username="shadow",
        password="violet-kettle-harbour-42",
        role="hematologist",
        all_care_teams=True,
    )
    account_services.password_changed_record(user=unapproved)  # past the forced change
    users["unapproved"] = unapproved
    subject = make_user("subject", "clinician", (team,))
    hema = users["hematologist"]
    patient = services.patient_register(
        user=hema, mrn="P001", name="Matrix Patient", infusion_date=date(2025, 3, 1), care_team=team
    )
    lab = services.lab_record(
        user=hema,
        patient=patient,
        analyte="crp",
        value="12",
        unit="mg/L",
        collected_at=datetime(2025, 3, 2, 8, 0, tzinfo=ZoneInfo("UTC")),
    )
    observation = services.observation_record(
        user=hema, patient=patient, date=date(2025, 3, 2), tmax_c="38.5"
    )
    event = services.event_record(user=hema, patient=patient, kind="cr", date=date(2025, 3, 20))
    override = services.grade_override_set(
        user=hema, patient=patient, date=date(2025, 3, 3), grade=1, reason="x"
    )
    transfer = record_transfer(user=hema, direction="import", kind="labs", filename="labs.csv")
    alert = Alert.objects.filter(patient=patient).first() or Alert.objects.create(
        patient=patient,
        kind=Alert._meta.get_field("kind").choices[0][0],
        day=1,
        message="m",
        raised_at=timezone.now(),
    )
    job = Job.objects.create(kind=Job.Kind.SITE_PARAMETERS, started_by=hema, status=Job.Status.SUCCEEDED)
    upload = ImportUpload.objects.create(uploaded_by=hema, kind="labs", filename="labs.csv", sha256="0" * 64)
    return {
        "users": users,
        "patient": patient,
        "values": {
            "mrn": patient.mrn,
            "lab": lab.pk,
            "observation": observation.pk,
            "event": event.pk,
            "override": override.pk,
            "alert": alert.pk,
            "transfer": transfer.pk,
            "team": team.pk,
            "job": job.pk,
            "upload": upload.pk,
            "grant": unapproved.clinical_grants.get().pk,
            "user": subject.pk,
            "day": observation.date.isoformat(),
            "name": "provisional-v0",
            "object_id": patient.pk,
            "id": subject.pk,
            "content_type_id": ContentType.objects.get_for_model(Patient).pk,
            "app_label": "patients",
            "url": "no-such-page/",
            "path": "no-such-endpoint/",
        },
    }


def url_values(route: Route, values: dict[str, Any]) -> dict[str, Any]:
    """The value of each URL parameter; ``pk`` names the object its route is about."""
    out = {}
    for param in route.params:
        if param == "pk":
            kinds = ("lab", "observation", "event", "override", "alert", "team", "job", "grant", "upload")
            kind = next((k for k in kinds if k in route.key), "user")
            out[param] = values[kind]
        else:
            out[param] = values[param]
    return out


def request_as(world: dict[str, Any], role: str, method: str, path: str) -> Any:
    """One request as ``role``, rolled back afterwards so requests never affect each other."""
    with transaction.atomic():
        client = Client(raise_request_exception=False)
        user = world["users"][role]
        if user is not None:
            client.force_login(user)
        if method == POST and path.startswith("/api/"):
            response = client.post(path, "{}", content_type="application/json", REMOTE_ADDR="10.9.9.9")
        else:
            response = getattr(client, method)(path, REMOTE_ADDR="10.9.9.9")
        outcome = classify(response)
        transaction.set_rollback(True)
    return outcome


def observe(world: dict[str, Any], route: Route, method: str) -> tuple[Any, ...]:
    path = build_path(route.route, url_values(route, world["values"]))
    return tuple(request_as(world, role, method, path) for role in ROLES)


def observe_all(world: dict[str, Any]) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """What every route answers now (a helper for updating the table)."""
    out = {}
    for route in walk():
        method = EXPECTED.get(route.key, (GET, ()))[0]
        out[route.key] = (method, observe(world, route, method))
    return out


# --- the tests -------------------------------------------------------------------------------


def test_every_route_has_an_entry() -> None:
    missing = sorted({r.key for r in walk()} - set(EXPECTED))
    assert not missing, "Routes without an access-matrix entry (add them to EXPECTED): " + ", ".join(missing)


def test_no_entry_for_a_route_that_is_gone() -> None:
    stale = sorted(set(EXPECTED) - {r.key for r in walk()})
    assert not stale, "Access-matrix entries for routes that no longer exist: " + ", ".join(stale)


def test_admin_models_are_the_registered_ones() -> None:
    registered = {m._meta.label_lower for m in admin.site._registry}
    assert registered == set(ADMIN_MODELS)


def test_access_matrix(matrix_world: dict[str, Any]) -> None:
    mismatches = []
    for route in walk():
        if route.key not in EXPECTED:
            continue  # reported by test_every_route_has_an_entry
        method, want = EXPECTED[route.key]
        got = observe(matrix_world, route, method)
        for role, w, g in zip(ROLES, want, got, strict=True):
            if w != g:
                mismatches.append(
                    f"{route.key} [{method.upper()} /{route.route}] as {role}: expected {w}, got {g}"
                )
    assert not mismatches, "\n".join(mismatches)


def test_other_teams_patient_is_logged_as_refused(matrix_world: dict[str, Any]) -> None:
    from crsrisk.accounts.models import AccessLog

    client = Client()
    client.force_login(matrix_world["users"]["other_clinician"])
    client.get(f"/patients/{matrix_world['patient'].mrn}/")
    assert AccessLog.objects.filter(username="clin9", granted=False, mrn="P001").exists()


def test_after_an_admin_reset_the_account_answers_as_an_unapproved_one(matrix_world: dict[str, Any]) -> None:
    """The admin knows the new password: past the forced change, nothing clinical opens (f2)."""
    users = matrix_world["users"]
    clinician = users["team_clinician"]
    account_services.user_password_reset(
        actor=users["admin"], user=clinician, password="amber-lantern-orchard-77"
    )
    account_services.password_changed_record(user=clinician)  # the admin did the forced change
    unapproved = ROLES.index("unapproved")
    mismatches = []
    for route in walk():
        if route.key not in EXPECTED:
            continue
        method, want = EXPECTED[route.key]
        path = build_path(route.route, url_values(route, matrix_world["values"]))
        got = request_as(matrix_world, "team_clinician", method, path)
        if got != want[unapproved]:
            mismatches.append(f"{route.key}: expected {want[unapproved]}, got {got}")
    assert not mismatches, "\n".join(mismatches)
