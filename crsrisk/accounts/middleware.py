"""Absolute session lifetime on top of Django's sliding idle timeout (SPEC 7)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, ResolverMatch, resolve

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


FORCED_CHANGE_SESSION_KEY = "crs_must_change_password"
# What an account that must change its password may still reach.
_OPEN_WHILE_PASSWORD_CHANGE = {"accounts:password-change", "accounts:logout", "set_language"}


def mark_password_change_required(request: HttpRequest, required: bool) -> None:
    """Remember in the session, at sign-in, that this account must first choose a new password."""
    if hasattr(request, "session"):
        if required:
            request.session[FORCED_CHANGE_SESSION_KEY] = True
        else:
            request.session.pop(FORCED_CHANGE_SESSION_KEY, None)


class PasswordChangeRequiredMiddleware:
    """After an admin created the account or reset its password, only the password page opens.

    The flag lives in the session (set at sign-in), so other requests cost no query.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and request.session.get(FORCED_CHANGE_SESSION_KEY):
            match = getattr(request, "resolver_match", None) or _resolve(request.path_info)
            if match is None or match.view_name not in _OPEN_WHILE_PASSWORD_CHANGE:
                if request.path_info.startswith("/api/"):
                    return JsonResponse(
                        {"detail": "Choose a new password on the web page first; it was set by an admin."},
                        status=403,
                    )
                return redirect("accounts:password-change")
        return self.get_response(request)


def _resolve(path: str) -> ResolverMatch | None:
    try:
        return resolve(path)
    except Resolver404:
        return None
