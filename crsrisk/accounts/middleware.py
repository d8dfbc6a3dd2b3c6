"""Absolute session lifetime on top of Django's sliding idle timeout (SPEC 7)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

SESSION_STARTED_KEY = "crs_session_started"


def mark_session_start(request: HttpRequest) -> None:
    """Start the absolute lifetime at login (``user_logged_in``), not at the next request."""
    if hasattr(request, "session"):
        request.session[SESSION_STARTED_KEY] = time.time()


class SessionLifetimeMiddleware:
    """End an authenticated session after SESSION_ABSOLUTE_SECONDS, however active."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            started = request.session.get(SESSION_STARTED_KEY)
            now = time.time()
            if started is None:
                request.session[SESSION_STARTED_KEY] = now
            elif now - float(started) > settings.SESSION_ABSOLUTE_SECONDS:
                logout(request)
        return self.get_response(request)
