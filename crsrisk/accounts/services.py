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
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from rest_framework.authtoken.models import Token

from crsrisk.accounts.models import ClinicalGrant, Profile, Role, SecurityEvent
from crsrisk.accounts.roles import care_teams_of, is_clinical, is_hematologist, sees_all_teams
from crsrisk.accounts.tokens import token_create
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
    profile = _assign(user, role, care_teams, all_care_teams)
    # The admin chose this password: the first sign-in asks for a new one.
    profile.must_change_password = True
    profile.save(update_fields=["must_change_password"])
    pending = role in CLINICAL_ROLES
    security_event_record(
        kind=SecurityEvent.Kind.ACCOUNT_CREATED,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail=_describe(role, care_teams, all_care_teams) + (" (waiting for approval)" if pending else ""),
    )
    if pending:
        _grant_request(actor, user, role, care_teams, all_care_teams, ip_address)
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
    profile = _assign(user, role, care_teams, all_care_teams)
    # What the change takes away applies at once; what it adds waits for a hematologist.
    covered = _narrow_in_force(profile, role, care_teams, all_care_teams)
    _withdraw_pending(actor, user, ip_address, reason="replaced by a new change")
    security_event_record(
        kind=SecurityEvent.Kind.ACCOUNT_CHANGED,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail=_describe(role, care_teams, all_care_teams) + ("" if covered else " (waiting for approval)"),
    )
    if not covered:
        _grant_request(actor, user, role, care_teams, all_care_teams, ip_address)
    return user


# --- clinical access grants (issue 9) -------------------------------------------------------

CLINICAL_ROLES = (Role.CLINICIAN.value, Role.HEMATOLOGIST.value)
_RANK = {Role.CLINICIAN.value: 1, Role.HEMATOLOGIST.value: 2}


def _in_force(user: User) -> ClinicalGrant | None:
    profile = Profile.objects.select_related("clinical_grant").filter(user=user).first()
    return profile.clinical_grant if profile is not None else None


def _narrow_in_force(profile: Profile, role: str, care_teams: list[CareTeam], all_care_teams: bool) -> bool:
    """Cut the grant in force down to what the admin now asks for; True if that covers all of it.

    The grant in force then describes exactly the access still approved, so taking a team away
    and giving it back again needs a new approval.
    """
    grant = profile.clinical_grant
    if role not in CLINICAL_ROLES:
        if grant is not None:
            profile.clinical_grant = None
            profile.save(update_fields=["clinical_grant"])
        return True
    if grant is None:
        return False
    approved_teams = set(CareTeam.objects.all()) if grant.all_care_teams else set(grant.care_teams.all())
    grant.role = min(grant.role, role, key=_RANK.__getitem__)
    grant.all_care_teams = grant.all_care_teams and all_care_teams
    grant.save(update_fields=["role", "all_care_teams"])
    kept = [t for t in care_teams if t in approved_teams]
    grant.care_teams.set(kept)
    return grant.role == role and grant.all_care_teams == all_care_teams and len(kept) == len(care_teams)


def _grant_request(
    actor: Any, user: User, role: str, care_teams: list[CareTeam], all_care_teams: bool, ip: str | None
) -> ClinicalGrant:
    grant = ClinicalGrant.objects.create(
        user=user,
        role=role,
        all_care_teams=all_care_teams,
        requested_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    grant.care_teams.set(care_teams)
    security_event_record(
        kind=SecurityEvent.Kind.GRANT_REQUESTED,
        username=user.username,
        actor=actor,
        ip_address=ip,
        detail=_describe(role, care_teams, all_care_teams),
    )
    return grant


def _withdraw_pending(actor: Any, user: User, ip: str | None, *, reason: str) -> None:
    for grant in ClinicalGrant.objects.filter(user=user, status=ClinicalGrant.Status.PENDING):
        grant.status = ClinicalGrant.Status.WITHDRAWN
        grant.decided_at = timezone.now()
        grant.note = reason
        grant.save(update_fields=["status", "decided_at", "note"])
        security_event_record(
            kind=SecurityEvent.Kind.GRANT_WITHDRAWN,
            username=user.username,
            actor=actor,
            ip_address=ip,
            detail=f"grant {grant.pk}: {reason}",
        )


def grant_teams_to_vouch_for(grant: ClinicalGrant) -> list[CareTeam]:
    """The teams an approver must belong to: those the grant adds, or all of them for a new role."""
    teams = list(grant.care_teams.all())
    in_force = _in_force(grant.user)
    if in_force is None or _RANK[grant.role] > _RANK[in_force.role] or in_force.all_care_teams:
        return teams
    approved = set(in_force.care_teams.all())
    return [t for t in teams if t not in approved] or teams


def grant_decision_refusal(*, approver: Any, grant: ClinicalGrant) -> str | None:
    """Why ``approver`` may not decide ``grant``, or None if they may."""
    if grant.status != ClinicalGrant.Status.PENDING:
        return _("This request is no longer waiting for approval.")
    if not is_hematologist(approver):
        return _("Only a hematologist with clinical access decides on clinical access.")
    if approver.pk in (grant.user_id, grant.requested_by_id):
        return _("A second person decides: not the account itself, and not whoever asked for it.")
    if grant.all_care_teams:
        if sees_all_teams(approver):
            return None
        return _("Only a hematologist who sees all care teams decides on access to all care teams.")
    if sees_all_teams(approver):
        return None
    mine = set(care_teams_of(approver))
    missing = [t.name for t in grant_teams_to_vouch_for(grant) if t not in mine]
    if missing:
        return _("Only a hematologist of the care team decides; you are not in: %(teams)s.") % {
            "teams": ", ".join(sorted(missing))
        }
    return None


def _locked_pending(grant: ClinicalGrant) -> ClinicalGrant:
    return ClinicalGrant.objects.select_for_update().select_related("user").get(pk=grant.pk)


@transaction.atomic
def grant_approve(
    *, actor: Any, grant: ClinicalGrant, ip_address: str | None = None, from_command: bool = False
) -> ClinicalGrant:
    """A hematologist of the team (a second person) approves a grant: it is in force from now on.

    ``from_command`` is ``manage.py approve_grant``, for a site's first hematologist: whoever
    runs it already controls the server, so the second-person rule cannot apply there.
    """
    grant = _locked_pending(grant)
    if from_command:
        if grant.status != ClinicalGrant.Status.PENDING:
            raise ValidationError(_("This request is no longer waiting for approval."))
    else:
        refusal = grant_decision_refusal(approver=actor, grant=grant)
        if refusal:
            raise ValidationError(refusal)
    grant.status = ClinicalGrant.Status.APPROVED
    grant.decided_by = actor if not from_command else None
    grant.decided_at = timezone.now()
    grant.note = "approved with manage.py approve_grant" if from_command else ""
    grant.save(update_fields=["status", "decided_by", "decided_at", "note"])
    Profile.objects.filter(user=grant.user).update(clinical_grant=grant)
    security_event_record(
        kind=SecurityEvent.Kind.GRANT_APPROVED,
        username=grant.user.username,
        actor=None if from_command else actor,
        ip_address=ip_address,
        detail=f"grant {grant.pk}: {_describe(grant.role, grant.care_teams.all(), grant.all_care_teams)}"
        + (" (manage.py approve_grant)" if from_command else ""),
    )
    return grant


@transaction.atomic
def grant_refuse(*, actor: Any, grant: ClinicalGrant, ip_address: str | None = None) -> ClinicalGrant:
    """A hematologist refuses a grant: the account keeps only the access already in force."""
    grant = _locked_pending(grant)
    refusal = grant_decision_refusal(approver=actor, grant=grant)
    if refusal:
        raise ValidationError(refusal)
    grant.status = ClinicalGrant.Status.REFUSED
    grant.decided_by = actor
    grant.decided_at = timezone.now()
    grant.save(update_fields=["status", "decided_by", "decided_at"])
    security_event_record(
        kind=SecurityEvent.Kind.GRANT_REFUSED,
        username=grant.user.username,
        actor=actor,
        ip_address=ip_address,
        detail=f"grant {grant.pk}",
    )
    return grant


@transaction.atomic
def clinical_grant_bootstrap(*, user: User, note: str) -> ClinicalGrant:
    """An approved grant for the account's current role and teams, with no approver.

    Only for accounts made outside the admin pages: the demo seed and test fixtures. Whoever
    can call it already controls the server; the audit records it with ``note``.
    """
    profile = Profile.objects.get(user=user)
    role = next((r for r in reversed(CLINICAL_ROLES) if user.groups.filter(name=r).exists()), None)
    if role is None:
        raise ValidationError(_("The account '%(name)s' has no clinical role.") % {"name": user.username})
    teams = list(profile.care_teams.all())
    grant = ClinicalGrant.objects.create(
        user=user,
        role=role,
        all_care_teams=profile.all_care_teams,
        status=ClinicalGrant.Status.APPROVED,
        decided_at=timezone.now(),
        note=note,
    )
    grant.care_teams.set(teams)
    profile.clinical_grant = grant
    profile.save(update_fields=["clinical_grant"])
    security_event_record(
        kind=SecurityEvent.Kind.GRANT_APPROVED,
        username=user.username,
        detail=f"grant {grant.pk}: {_describe(role, teams, profile.all_care_teams)} ({note})",
    )
    return grant


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
    _withdraw_pending(actor, user, ip_address, reason="account deactivated")
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
def user_password_reset(*, actor: Any, user: User, password: str, ip_address: str | None = None) -> bool:
    """An admin sets a new password: the sessions end, the API token goes, the approved clinical
    access is withdrawn and asked for again, the next sign-in asks for a new password. Returns
    whether an API token was revoked."""
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    user.save(update_fields=["password"])
    _end_sessions(user)
    revoked = _revoke_tokens(user)
    Profile.objects.update_or_create(user=user, defaults={"must_change_password": True})
    _withdraw_in_force(actor, user, ip_address)
    security_event_record(
        kind=SecurityEvent.Kind.PASSWORD_RESET,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail="API token revoked" if revoked else "",
    )
    return revoked


@transaction.atomic
def password_changed_record(*, user: User, ip_address: str | None = None) -> bool:
    """After a user changed their own password: the API token goes (it was tied to the old one),
    a forced change is done, and the event is audited. Returns whether a token was revoked."""
    revoked = _revoke_tokens(user)
    Profile.objects.filter(user=user).update(must_change_password=False)
    security_event_record(
        kind=SecurityEvent.Kind.PASSWORD_CHANGED,
        username=user.get_username(),
        actor=user,
        ip_address=ip_address,
        detail="API token revoked" if revoked else "",
    )
    return revoked


def _withdraw_in_force(actor: Any, user: User, ip: str | None) -> None:
    """After an admin's reset the admin knows the password: the approved clinical access ends,
    and is asked for again, so that a hematologist (never the admin) approves it anew.

    A pending request already covers what is in force (narrowing applies at once), so it stays
    and is the request again; otherwise the grant in force is requested as it was.
    """
    profile = Profile.objects.select_related("clinical_grant").filter(user=user).first()
    grant = profile.clinical_grant if profile is not None else None
    if profile is None or grant is None:
        return
    profile.clinical_grant = None
    profile.save(update_fields=["clinical_grant"])
    grant.status = ClinicalGrant.Status.WITHDRAWN
    grant.note = "password reset by an admin"
    grant.save(update_fields=["status", "note"])
    security_event_record(
        kind=SecurityEvent.Kind.GRANT_WITHDRAWN,
        username=user.username,
        actor=actor,
        ip_address=ip,
        detail=f"grant {grant.pk}: password reset by an admin",
    )
    if not ClinicalGrant.objects.filter(user=user, status=ClinicalGrant.Status.PENDING).exists():
        _grant_request(actor, user, grant.role, list(grant.care_teams.all()), grant.all_care_teams, ip)


def _revoke_tokens(user: User) -> bool:
    return bool(Token.objects.filter(user=user).delete()[0] > 0)


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
def token_issue(*, user: User, actor: Any = None, ip_address: str | None = None) -> str:
    """Issue a new API token for ``user`` (replacing any old one) and return its key, shown once.

    Only the owner creates their token, on their own account page (``actor`` is ``user``), and
    only with clinical access. ``actor=None`` is ``manage.py issue_token``, for deployment
    scripts run by whoever controls the server; it is audited as such. An admin never gets one.
    """
    if actor is not None and getattr(actor, "pk", None) != user.pk:
        raise ValidationError(_("An API token is created by its owner, on their own account page."))
    if not user.is_active:
        raise ValidationError(_("The account '%(name)s' is deactivated.") % {"name": user.username})
    if actor is not None and not is_clinical(user):
        raise ValidationError(_("API tokens are for accounts with approved clinical access."))
    replaced = _revoke_tokens(user)
    key = token_create(user)
    Profile.objects.filter(user=user).update(token_last_used_at=None)
    source = "created by its owner" if actor is not None else "issued by manage.py issue_token"
    security_event_record(
        kind=SecurityEvent.Kind.TOKEN_ISSUED,
        username=user.username,
        actor=actor,
        ip_address=ip_address,
        detail=source + ("; replaced the previous token" if replaced else ""),
    )
    return key


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
