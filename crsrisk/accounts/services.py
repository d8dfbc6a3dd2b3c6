"""Account administration and the security audit (SPEC 7). Every account write goes through here.

Each service runs in one transaction, and writes one ``SecurityEvent`` (UTC time, the
acting user, the subject's username, the client address; never a password or a token)
which is also sent to the ``crsrisk.security`` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import axes.utils
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from rest_framework.authtoken.models import Token

from crsrisk.accounts.models import Profile, Role, SecurityEvent
from patients.models import CareTeam

security_log = logging.getLogger("crsrisk.security")


def security_event_record(
    *,
    kind: str,
    username: str,
    actor: Any = None,
    ip_address: str | None = None,
    detail: str = "",
) -> SecurityEvent:
    """Append one security event and log it; ``detail`` must never hold a secret."""
    actor = actor if getattr(actor, "is_authenticated", False) else None
    event = SecurityEvent.objects.create(
        kind=kind,
        username=(username or "")[:150],
        actor=actor,
        ip_address=ip_address or None,
        detail=detail,
    )
    security_log.info(
        "%s user=%s actor=%s ip=%s %s",
        kind,
        event.username or "-",
        getattr(actor, "username", "-"),
        ip_address or "-",
        detail,
    )
    return event


def _check_role_and_teams(role: str, care_teams: Iterable[CareTeam], all_care_teams: bool) -> None:
    if role not in Role.values:
        raise ValidationError(
            {"role": _("Role must be one of: %(roles)s.") % {"roles": ", ".join(Role.values)}}
        )
    if all_care_teams and role != Role.HEMATOLOGIST:
        raise ValidationError({"all_care_teams": _("Only a hematologist account can see all care teams.")})
    if role == Role.ADMIN and list(care_teams):
        raise ValidationError(
            {"care_teams": _("Admins see no clinical data, so they belong to no care team.")}
        )


def _assign(user: User, role: str, care_teams: Iterable[CareTeam], all_care_teams: bool) -> Profile:
    user.groups.remove(*Group.objects.filter(name__in=Role.values))
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    profile, _created = Profile.objects.get_or_create(user=user)
    profile.all_care_teams = all_care_teams
    profile.save()
    profile.care_teams.set(list(care_teams))
    return profile


def _describe(role: str, care_teams: Iterable[CareTeam], all_care_teams: bool) -> str:
    teams = "all" if all_care_teams else ", ".join(sorted(t.name for t in care_teams)) or "none"
    return f"role={role} care_teams={teams}"


@transaction.atomic
def user_create(
    *,
    actor: Any,
    username: str,
    password: str,
    role: str,
    care_teams: Iterable[CareTeam] = (),
    all_care_teams: bool = False,
    ip_address: str | None = None,
) -> User:
    """Create an account in one role, with a password that passes AUTH_PASSWORD_VALIDATORS."""
    care_teams = list(care_teams)
    _check_role_and_teams(role, care_teams, all_care_teams)
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": _("The username '%(name)s' is taken.") % {"name": username}})
    user = User(username=username)
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    user.save()
    _assign(user, role, care_teams, all_care_teams)
    security_event_record(
        kind=SecurityEvent.Kind.ACCOUNT_CREATED,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail=_describe(role, care_teams, all_care_teams),
    )
    return user


@transaction.atomic
def user_update(
    *,
    actor: Any,
    user: User,
    role: str,
    care_teams: Iterable[CareTeam] = (),
    all_care_teams: bool = False,
    ip_address: str | None = None,
) -> User:
    """Change an account's role and care teams."""
    care_teams = list(care_teams)
    _check_role_and_teams(role, care_teams, all_care_teams)
    if user.pk == getattr(actor, "pk", None) and role != Role.ADMIN:
        raise ValidationError({"role": _("You cannot take the admin role from your own account.")})
    _assign(user, role, care_teams, all_care_teams)
    security_event_record(
        kind=SecurityEvent.Kind.ACCOUNT_CHANGED,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail=_describe(role, care_teams, all_care_teams),
    )
    return user


@transaction.atomic
def user_deactivate(*, actor: Any, user: User, ip_address: str | None = None) -> User:
    """Deactivate an account (never delete it): it can no longer sign in, and its tokens go."""
    if user.pk == getattr(actor, "pk", None):
        raise ValidationError(_("You cannot deactivate your own account."))
    if not user.is_active:
        raise ValidationError(_("The account '%(name)s' is already deactivated.") % {"name": user.username})
    user.is_active = False
    user.save(update_fields=["is_active"])
    revoked = Token.objects.filter(user=user).delete()[0]
    _end_sessions(user)
    security_event_record(
        kind=SecurityEvent.Kind.ACCOUNT_DEACTIVATED,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail="API token revoked" if revoked else "",
    )
    return user


@transaction.atomic
def user_reactivate(*, actor: Any, user: User, ip_address: str | None = None) -> User:
    """Let a deactivated account sign in again."""
    if user.is_active:
        raise ValidationError(_("The account '%(name)s' is active.") % {"name": user.username})
    user.is_active = True
    user.save(update_fields=["is_active"])
    security_event_record(
        kind=SecurityEvent.Kind.ACCOUNT_CHANGED,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail="reactivated",
    )
    return user


def _end_sessions(user: User) -> int:
    """Delete every stored session of ``user`` (database sessions)."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended


@transaction.atomic
def user_password_reset(*, actor: Any, user: User, password: str, ip_address: str | None = None) -> User:
    """An admin sets a new password; the account's sessions end."""
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    user.save(update_fields=["password"])
    _end_sessions(user)
    security_event_record(
        kind=SecurityEvent.Kind.PASSWORD_RESET, username=user.username, actor=actor, ip_address=ip_address
    )
    return user


@transaction.atomic
def user_unlock(*, actor: Any, username: str, ip_address: str | None = None) -> int:
    """Lift a django-axes lockout; returns the number of attempt records cleared."""
    cleared = axes.utils.reset(username=username)
    security_event_record(
        kind=SecurityEvent.Kind.UNLOCK,
        username=username,
        actor=actor,
        ip_address=ip_address,
        detail=f"cleared {cleared} failed-attempt record(s)",
    )
    return int(cleared)


@transaction.atomic
def token_issue(*, actor: Any, user: User, ip_address: str | None = None) -> str:
    """Issue a new API token for ``user`` (replacing any old one) and return its key, shown once."""
    if not user.is_active:
        raise ValidationError(_("The account '%(name)s' is deactivated.") % {"name": user.username})
    replaced = Token.objects.filter(user=user).delete()[0]
    token = Token.objects.create(user=user)
    security_event_record(
        kind=SecurityEvent.Kind.TOKEN_ISSUED,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail="replaced the previous token" if replaced else "",
    )
    return str(token.key)


@transaction.atomic
def token_revoke(*, actor: Any, user: User, ip_address: str | None = None) -> bool:
    """Revoke the user's API token; returns whether there was one."""
    revoked = Token.objects.filter(user=user).delete()[0] > 0
    if not revoked:
        raise ValidationError(_("The account '%(name)s' has no API token.") % {"name": user.username})
    security_event_record(
        kind=SecurityEvent.Kind.TOKEN_REVOKED, username=user.username, actor=actor, ip_address=ip_address
    )
    return bool(revoked)


CARE_TEAM_NAME_MAX_CHARS = CareTeam._meta.get_field("name").max_length or 0
TEAM_TAKEN = gettext_noop("A care team called '%(name)s' already exists.")


def _care_team_name(name: str, *, other_than: CareTeam | None = None) -> str:
    """A team name as stored: trimmed, not empty, not too long, unique whatever its case."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the care team a name.")})
    if len(name) > CARE_TEAM_NAME_MAX_CHARS:
        raise ValidationError(
            {
                "name": _("A care team name has at most %(n)s characters; this one has %(len)s.")
                % {"n": CARE_TEAM_NAME_MAX_CHARS, "len": len(name)}
            }
        )
    taken = CareTeam.objects.filter(name__iexact=name)
    if other_than is not None:
        taken = taken.exclude(pk=other_than.pk)
    existing = taken.first()
    if existing is not None:
        raise ValidationError({"name": _(TEAM_TAKEN) % {"name": existing.name}})
    return name


@transaction.atomic
def care_team_create(*, actor: Any, name: str, ip_address: str | None = None) -> CareTeam:
    """Create a care team (a name only: admins see no clinical data)."""
    name = _care_team_name(name)
    try:
        with transaction.atomic():
            team = CareTeam.objects.create(name=name)
    except IntegrityError as exc:  # created by someone else since the check
        raise ValidationError({"name": _(TEAM_TAKEN) % {"name": name}}) from exc
    security_event_record(
        kind=SecurityEvent.Kind.CARE_TEAM_CREATED,
        username="",
        actor=actor,
        ip_address=ip_address,
        detail=f"name={name!r}",
    )
    return team


@transaction.atomic
def care_team_rename(*, actor: Any, team: CareTeam, name: str, ip_address: str | None = None) -> CareTeam:
    """Rename a care team; its members and patients stay with it."""
    team = CareTeam.objects.select_for_update().get(pk=team.pk)
    old = team.name
    name = _care_team_name(name, other_than=team)
    if name == old:
        raise ValidationError({"name": _("The care team is already called '%(name)s'.") % {"name": old}})
    team.name = name
    try:
        with transaction.atomic():
            team.save(update_fields=["name"])
    except IntegrityError as exc:
        raise ValidationError({"name": _(TEAM_TAKEN) % {"name": name}}) from exc
    security_event_record(
        kind=SecurityEvent.Kind.CARE_TEAM_RENAMED,
        username="",
        actor=actor,
        ip_address=ip_address,
        detail=f"from={old!r} to={name!r}",
    )
    return team
