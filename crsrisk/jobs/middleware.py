"""A request the database breaks answers 503 with Retry-After, never a 500 or a trace."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import gettext as _

logger = logging.getLogger("crsrisk.jobs")

RETRY_AFTER_SECONDS = 5
DATABASE_ERRORS = (OperationalError, InterfaceError)


# PostgreSQL: connection exceptions (class 08), admin/crash shutdown, cannot connect now.
UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03")
# No SQLSTATE (the server went away mid-query, or a refused connection): the driver's words.
CONNECTION_LOST_WORDS = ("connection", "could not connect", "server closed", "database is locked")


def is_database_unavailable(exc: BaseException | None) -> bool:
    """The database could not be reached, dropped the connection or is locked (not a bad query).

    A bad query (on SQLite "no such table", say: an OperationalError too) is a bug: False,
    so that it is a 500 with its traceback logged, not a "retry".
    """
    while exc is not None:
        if isinstance(exc, DATABASE_ERRORS):
            return _is_connection_error(exc)
        exc = exc.__cause__ or exc.__context__
    return False


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, InterfaceError):  # the connection is closed already
        return True
    cause = exc.__cause__ or exc
    sqlstate = getattr(getattr(cause, "diag", None), "sqlstate", None) or getattr(cause, "sqlstate", None)
    if sqlstate:  # PostgreSQL said why
        return sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES
    if any(not conn.is_usable() for conn in connections.all(initialized_only=True)):
        return True
    message = str(cause).lower()
    return any(word in message for word in CONNECTION_LOST_WORDS)


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: JSON under /api/, a plain translated page elsewhere.

    Rendered without the request context: its context processors would ask the database.
    The broken connections are closed so that the next request opens fresh ones.
    """
    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"detail": _("The database is unavailable; nothing was stored. Retry in a few seconds.")},
            status=503,
        )
    else:
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Turn a view's database outage into 503 (``crsrisk.views.server_error`` covers the rest)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_database_unavailable(exception):
            return None
        logger.warning("database unavailable: %s %s: %s", request.method, request.path, exception)
        return database_unavailable_response(request)
