"""Reads for the account administration and security audit pages (SPEC 7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.utils import timezone
from rest_framework.authtoken.models import Token

from crsrisk.accounts.models import AccessLog, ClinicalGrant, Profile, Role, SecurityEvent
from patients.models import CareTeam


@dataclass(frozen=True)
class UserRow:
    user: User
    role: str | None
    care_teams: list[str]
    all_care_teams: bool
    locked: bool
    has_token: bool
    # Clinical access (issue 9): the request waiting for a hematologist, and whether a grant is in force.
    pending_grant: ClinicalGrant | None = None
    clinical_access: bool = False


def _role(user: User) -> str | None:
    names = {g.name for g in user.groups.all()}
    return next((r.value for r in (Role.HEMATOLOGIST, Role.CLINICIAN, Role.ADMIN) if r.value in names), None)


def user_rows() -> list[UserRow]:
    """Every account with its role, teams, lock and token state, in a constant number of queries."""
    users = (
        User.objects.order_by("username")
        .select_related("profile__clinical_grant")
        .prefetch_related(
            "groups",
            Prefetch("profile__care_teams"),
            Prefetch(
                "clinical_grants",
                queryset=ClinicalGrant.objects.filter(status=ClinicalGrant.Status.PENDING).prefetch_related(
                    "care_teams"
                ),
                to_attr="pending_grants",
            ),
        )
        .annotate(has_token=Exists(Token.objects.filter(user=OuterRef("pk"))))
    )
    locked = set(
        AccessAttempt.objects.filter(failures_since_start__gte=settings.AXES_FAILURE_LIMIT).values_list(
            "username", flat=True
        )
    )
    rows = []
    for user in users:
        profile: Profile | None = getattr(user, "profile", None)
        rows.append(
            UserRow(
                user=user,
                role=_role(user),
                care_teams=[t.name for t in profile.care_teams.all()] if profile else [],
                all_care_teams=bool(profile and profile.all_care_teams),
                locked=user.username in locked,
                has_token=user.has_token,
                pending_grant=next(iter(user.pending_grants), None),
                clinical_access=bool(profile and profile.clinical_grant_id),
            )
        )
    return rows


def user_row(user: User) -> UserRow:
    """One account's row."""
    return next(r for r in user_rows() if r.user.pk == user.pk)


@dataclass(frozen=True)
class TokenState:
    created: datetime
    last_used: datetime | None


def token_state(user: User) -> TokenState | None:
    """Whether the user has an API token, since when and when it was last used; never its key."""
    token = Token.objects.filter(user=user).only("created").first()
    if token is None:
        return None
    profile = Profile.objects.filter(user=user).only("token_last_used_at").first()
    return TokenState(created=token.created, last_used=profile.token_last_used_at if profile else None)


# What an admin reads on an account's page: who created it, who asked for and who approved its
# clinical access, password and token events, and every sign-in (the rest is on the audit page).
HISTORY_KINDS = [k for k in SecurityEvent.Kind.values if k not in ("logout", "login_failed", "lockout")]
HISTORY_ROWS = 50


def account_history(user: User) -> list[SecurityEvent]:
    """The account's own security events, newest first (the audit page has all of them)."""
    return list(
        SecurityEvent.objects.filter(username=user.username, kind__in=HISTORY_KINDS)
        .select_related("actor")
        .order_by("-at", "-pk")[:HISTORY_ROWS]
    )


def grants_to_decide(user: User) -> list[ClinicalGrant]:
    """Pending requests for clinical access that ``user`` may approve or refuse."""
    from crsrisk.accounts.services import grant_decision_refusal

    pending = (
        ClinicalGrant.objects.filter(status=ClinicalGrant.Status.PENDING)
        .select_related("user", "requested_by")
        .prefetch_related("care_teams")
        .order_by("requested_at", "pk")
    )
    return [g for g in pending if grant_decision_refusal(approver=user, grant=g) is None]


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _filter_window(qs: QuerySet[Any], filters: dict[str, Any]) -> QuerySet[Any]:
    if filters.get("username"):
        qs = qs.filter(username__iexact=filters["username"])
    if filters.get("date_from"):
        qs = qs.filter(at__gte=_day_start(filters["date_from"]))
    if filters.get("date_to"):
        qs = qs.filter(at__lt=_day_start(filters["date_to"] + timedelta(days=1)))
    return qs


def security_events(filters: dict[str, Any]) -> QuerySet[SecurityEvent]:
    """Security events, newest first, filtered by kind, username and site-time dates."""
    qs = _filter_window(SecurityEvent.objects.select_related("actor"), filters)
    if filters.get("kind"):
        qs = qs.filter(kind=filters["kind"])
    return qs.order_by("-at", "-pk")


def access_entries(filters: dict[str, Any]) -> QuerySet[AccessLog]:
    """Access-log lines, newest first: who opened which record, when. No clinical values."""
    qs = _filter_window(AccessLog.objects.all(), filters)
    if filters.get("mrn"):
        qs = qs.filter(mrn=filters["mrn"])
    return qs.order_by("-at", "-pk")


def care_teams() -> QuerySet[CareTeam]:
    """The care teams by name: names only, no patient or clinical data (admins see none)."""
    return CareTeam.objects.order_by("name").only("id", "name")
