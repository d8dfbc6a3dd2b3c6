"""The audit trail and access log are append-only, in the app, the admin and the database (SPEC 7).

21 CFR 11.10(e): record changes shall not obscure previously recorded information.
The triggers of crsrisk.accounts.appendonly refuse UPDATE and DELETE on PostgreSQL and
SQLite alike; INSERT stays allowed.
"""

from __future__ import annotations

from datetime import date

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from crsrisk.accounts import appendonly
from crsrisk.accounts.models import AccessLog, SecurityEvent
from patients import services
from patients.models import CareTeam, Patient
from scoring.models import DailyAssessment


def history_models() -> list[type]:
    return [m for m in apps.get_models() if m.__name__.startswith("Historical")]


def test_every_history_table_and_the_logs_are_covered(db: None) -> None:
    tables = set(appendonly.append_only_tables(connection))
    expected = {m._meta.db_table for m in history_models()} | {"accounts_accesslog", "accounts_securityevent"}
    assert expected <= tables
    assert len(history_models()) >= 7  # patients and scoring keep change histories


def trigger_count() -> int:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='trigger' AND name LIKE 'crsrisk_append_only%'"
            )
        else:
            cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'crsrisk_append_only'")
        return cursor.fetchone()[0]


@pytest.fixture
def audit_rows(patient: Patient, clinician: User) -> Patient:
    SecurityEvent.objects.create(kind="login", username="clin")
    AccessLog.objects.create(username="clin", mrn=patient.mrn, page="patients:detail")
    return patient


@pytest.mark.parametrize("model", [AccessLog, SecurityEvent])
def test_logs_refuse_update_and_delete(audit_rows: Patient, model: type) -> None:
    rows = model.objects.count()
    for change in (lambda: model.objects.update(username="forged"), lambda: model.objects.all().delete()):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            change()
    assert model.objects.exclude(username="forged").count() == rows


def test_every_history_table_refuses_update_and_delete(audit_rows: Patient) -> None:
    checked = 0
    for model in history_models():
        if not model.objects.exists():
            model_name = model._meta.db_table
            # Tables without rows yet: a raw statement still has to pass the trigger, which
            # only fires per row, so these are covered by the table list test above.
            assert model_name in appendonly.append_only_tables(connection)
            continue
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            model.objects.update(history_change_reason="forged")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            model.objects.all().delete()
        checked += 1
    assert checked >= 2  # at least the patient's and the infusion's history


def test_history_still_accepts_inserts(audit_rows: Patient, clinician: User) -> None:
    before = Patient.history.filter(id=audit_rows.pk).count()
    services.patient_update(
        user=clinician, patient=audit_rows, expected_version=audit_rows.version, reason="typo", name="Renamed"
    )
    history = Patient.history.filter(id=audit_rows.pk).order_by("history_date")
    assert history.count() == before + 1
    assert [h.name for h in history] == ["Test Patient", "Renamed"]  # the old value is kept


def test_derived_results_can_still_be_replaced(audit_rows: Patient) -> None:
    """Recompute deletes and rewrites derived rows; they are not history, so no trigger stops it."""
    DailyAssessment.objects.filter(patient=audit_rows).delete()
    assert not DailyAssessment.objects.filter(patient=audit_rows).exists()


@pytest.mark.django_db(transaction=True)
def test_flush_works_with_the_triggers_and_puts_them_back(team: CareTeam, clinician: User) -> None:
    """Test teardown flushes tables (TRUNCATE on PostgreSQL, DELETE on SQLite)."""
    services.patient_register(
        user=clinician,
        mrn="F001",
        name="Flush",
        infusion_date=date(2025, 3, 1),
        care_team=team,
        baseline_mrd_pct=None,
        post_ld_mrd_pct=None,
    )
    SecurityEvent.objects.create(kind="login", username="clin")
    before = trigger_count()
    assert before > 0
    call_command("flush", interactive=False, verbosity=0)
    assert not SecurityEvent.objects.exists() and not Patient.history.exists()
    assert trigger_count() == before


def test_append_only_triggers_are_installed_on_the_audit_tables(db: None) -> None:
    """The database itself guards the audit tables, on PostgreSQL and on SQLite."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname = 'crsrisk_append_only' AND t.tgenabled <> 'D'"
            )
        else:
            cursor.execute(
                "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' "
                "AND name LIKE 'crsrisk_append_only%'"
            )
        covered = {row[0] for row in cursor.fetchall()}
    assert {"accounts_accesslog", "accounts_securityevent", "patients_historicalpatient"} <= covered


def test_raw_sql_update_and_delete_are_refused(audit_rows: Patient) -> None:
    for sql in (
        "UPDATE accounts_accesslog SET username = 'forged'",
        "DELETE FROM accounts_securityevent",
        "UPDATE patients_historicalpatient SET name = 'forged'",
        "DELETE FROM patients_historicalpatient",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as c,
        ):
            c.execute(sql)


def test_data_transfer_rows_refuse_update_and_delete_in_the_database(audit_rows: Patient) -> None:
    """The import and export trail is audit data like the access log (issue 9, finding 5)."""
    from patients.imports import record_transfer

    record_transfer(user=None, direction="export", kind="cohort", filename="x.zip", patients=1)
    assert "patients_datatransfer" in appendonly.append_only_tables(connection)
    for sql in ("UPDATE patients_datatransfer SET filename = 'forged'", "DELETE FROM patients_datatransfer"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as c,
        ):
            c.execute(sql)
    from patients.models import DataTransfer

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        DataTransfer.objects.update(filename="forged")
    assert DataTransfer.objects.get().filename == "x.zip"


# --- the Django admin --------------------------------------------------------------------

CLINICAL_APPS = {"patients", "scoring"}


def test_admin_never_writes_clinical_models_even_for_superusers(db: None) -> None:
    root = User.objects.create_superuser("root", password="root-password-long-1")
    request = RequestFactory().get("/admin/")
    request.user = root
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label in CLINICAL_APPS:
            assert not model_admin.has_add_permission(request), model
            assert not model_admin.has_change_permission(request), model
            assert not model_admin.has_delete_permission(request), model
            assert not model_admin.has_view_permission(request), model  # a superuser is no clinician


def test_admin_lists_no_history_no_logs_no_tokens(db: None) -> None:
    registered = {m._meta.label for m in admin.site._registry}
    assert not any(label.split(".")[1].startswith("Historical") for label in registered)
    assert "accounts.AccessLog" not in registered and "accounts.SecurityEvent" not in registered
    assert "authtoken.TokenProxy" not in registered
    assert not any(label.startswith("axes.") for label in registered)


def test_admin_cannot_delete_accounts(db: None) -> None:
    root = User.objects.create_superuser("root", password="root-password-long-1")
    request = RequestFactory().get("/admin/")
    request.user = root
    for model in (User,):
        model_admin = admin.site._registry[model]
        assert not model_admin.has_delete_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_add_permission(request)


def test_superuser_sees_no_clinical_model_in_the_admin_index(client, db: None) -> None:
    root = User.objects.create_superuser("root", password="root-password-long-1")
    client.force_login(root)
    html = client.get("/admin/").content.decode()
    assert "Patients" not in html and "Lab results" not in html
    # Not registered at all (issue 9): the admin has no patient-data page to refuse.
    assert client.get("/admin/patients/patient/").status_code == 404
