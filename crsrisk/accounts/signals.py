"""Security events from Django's and django-axes' authentication signals (SPEC 7).

These receivers record what happened; the login receiver also starts the session's
absolute lifetime.
"""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from crsrisk.accounts.access import client_ip
from crsrisk.accounts.middleware import mark_password_change_required, mark_session_start
from crsrisk.accounts.models import Profile, SecurityEvent
from crsrisk.accounts.services import security_event_record


def _ip(request: HttpRequest | None) -> str | None:
    return client_ip(request) if request is not None else None


@receiver(user_logged_in, dispatch_uid="crsrisk_login")
def on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None:
        mark_session_start(request)
        must_change = Profile.objects.filter(user=user, must_change_password=True).exists()
        mark_password_change_required(request, must_change)
    security_event_record(
        kind=SecurityEvent.Kind.LOGIN, username=user.get_username(), actor=user, ip_address=_ip(request)
    )


@receiver(user_logged_out, dispatch_uid="crsrisk_logout")
def on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:  # logout of an anonymous session
        return
    security_event_record(
        kind=SecurityEvent.Kind.LOGOUT, username=user.get_username(), actor=user, ip_address=_ip(request)
    )


@receiver(user_login_failed, dispatch_uid="crsrisk_login_failed")
def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django already masks the password in ``credentials``; only the username is kept.
    username = str(credentials.get("username", ""))
    security_event_record(kind=SecurityEvent.Kind.LOGIN_FAILED, username=username, ip_address=_ip(request))


@receiver(user_locked_out, dispatch_uid="crsrisk_locked_out")
def on_locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    security_event_record(
        kind=SecurityEvent.Kind.LOCKOUT,
        username=username or "",
        ip_address=ip_address or _ip(request),
        detail="locked until an admin unlocks the account",
    )
