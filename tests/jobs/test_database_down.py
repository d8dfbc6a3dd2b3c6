"""When the database fails, a request gets 503 with Retry-After, never a 500 or a trace (issue 11).

The outage is made with Django's own ``connection.execute_wrapper``: every query (or only the
session's) fails as a dropped connection does. The real outage, PostgreSQL restarted under
gunicorn, is the load-and-fault test (tests/load/).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.test import Client

from crsrisk.accounts.tokens import token_create

# Outside a test transaction, as in production: a failed query must not poison the next request.
pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def database_down(only: str = "") -> Iterator[None]:
    def fail(execute, sql, params, many, context):  # noqa: ANN001  # Django's wrapper signature
        if only in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield


def test_api_answers_json_503_with_retry_after_and_recovers(clinician):
    key = token_create(clinician)
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {key}")
    with database_down():
        response = client.get("/api/v1/patients/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"] == "application/json"
    assert "database is unavailable" in response.json()["detail"]
    assert client.get("/api/v1/patients/").status_code == 200  # back at once, no restart


def test_page_answers_a_plain_translated_503(clinician):
    client = Client(raise_request_exception=False)
    client.force_login(clinician)
    with database_down():
        response = client.get("/patients/")
        chinese = client.get("/patients/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    html = response.content.decode()
    assert "Temporarily unavailable" in html and "Traceback" not in html
    assert chinese.status_code == 503 and "暂时无法使用" in chinese.content.decode()
    assert client.get("/patients/").status_code == 200


def test_a_failure_outside_the_view_is_a_503_too(clinician):
    """The session is saved after the view (SESSION_SAVE_EVERY_REQUEST): its failure is a 503."""
    client = Client(raise_request_exception=False)
    client.force_login(clinician)
    with database_down(only="django_session"):
        response = client.get("/patients/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"Temporarily unavailable" in response.content


def test_health_reports_the_database_down_as_503():
    client = Client(raise_request_exception=False)
    with database_down():
        response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
    assert client.get("/health/").json()["database"] == "ok"


def test_health_reports_the_queue_and_the_workers(hematologist):
    from crsrisk.jobs.models import Job
    from crsrisk.jobs.services import beat, job_start

    client = Client()
    report = client.get("/health/").json()
    assert report["workers"]["status"] == "stale" and report["queue"]["waiting"] == 0
    job_start(kind=Job.Kind.SITE_PARAMETERS, user=hematologist, params={"version": 1, "reason": "x"})
    beat()
    report = client.get("/health/").json()
    assert report["status"] == "ok" and report["workers"]["machines"] == 1
    assert report["queue"]["waiting"] == 1 and report["queue"]["oldest_waiting_seconds"] >= 0


def test_a_bad_query_is_a_logged_500_not_a_retry(clinician, caplog):
    """A missed migration ("no such table" is an OperationalError on SQLite) is a bug, not an outage."""

    def missing_table(execute, sql, params, many, context):  # noqa: ANN001  # Django's wrapper signature
        if "patients_patient" in sql:
            return execute("SELECT * FROM crsrisk_no_such_table", None, False, context)
        return execute(sql, params, many, context)

    client = Client(raise_request_exception=False)
    client.force_login(clinician)
    with connection.execute_wrapper(missing_table):
        response = client.get("/patients/")
    assert response.status_code == 500 and "Retry-After" not in response
    assert b"Traceback" not in response.content and b"crsrisk_no_such_table" not in response.content
    logged = [r for r in caplog.records if r.exc_info and "crsrisk_no_such_table" in str(r.exc_info[1])]
    assert logged and logged[0].levelname == "ERROR"
    assert client.get("/patients/").status_code == 200
