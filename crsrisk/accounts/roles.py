"""Role and care-team helpers used by every view, export and API endpoint (SPEC 7).

Clinical access needs two things: the role and care teams an admin set (the role's group and
the ``Profile``), and an approved ``ClinicalGrant`` in force that covers them (issue 9). The
helpers below give an account only what both allow, so a role or team an admin set without a
hematologist's approval opens nothing, on any page, API endpoint or export.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from crsrisk.accounts.models import Profile, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.db.models import QuerySet

    from patients.models import CareTeam, Patient

_RANK = {Role.CLINICIAN.value: 1, Role.HEMATOLOGIST.value: 2}


class _Grant(NamedTuple):
    pk: int
    role: str
    all_care_teams: bool


def _grant(user: AbstractBaseUser | AnonymousUser) -> _Grant | None:
    """The approved grant in force for ``user``, or None. Cached on the user object."""
    cached = getattr(user, "_crs_grant", "unset")
    if cached != "unset":
        return cached  # type: ignore[no-any-return,return-value,unused-ignore]  # set below
    # The profile and its grant in one query; the profile is kept on the user, so the care-team
    # checks of the same request (``sees_all_teams``, ``care_teams_of``) do not read it again.
    profile = Profile.objects.select_related("clinical_grant").filter(user_id=user.pk or 0).first()
    grant = None
    if profile is not None:
        user.profile = profile  # type: ignore[union-attr,attr-defined,unused-ignore]  # caches, saves nothing
        if profile.clinical_grant is not None:
            g = profile.clinical_grant
            grant = _Grant(g.pk, g.role, g.all_care_teams)
    user._crs_grant = grant  # type: ignore[union-attr,attr-defined,unused-ignore]  # per-request cache
    return grant


def role_of(user: AbstractBaseUser | AnonymousUser) -> str | None:
    """Return the user's role name, or None. Cached on the user object.

    A clinical role counts only as far as an approved grant covers it: a hematologist whose grant
    says clinician is a clinician, and a clinical role with no grant in force is no role at all.
    """
    if not user.is_authenticated:
        return None
    cached = getattr(user, "_crs_role", "unset")
    if cached != "unset":
        return cached  # type: ignore[no-any-return,unused-ignore]  # set below
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr,attr-defined,unused-ignore]  # AbstractBaseUser has no groups; ours is User
    role = next((r.value for r in (Role.HEMATOLOGIST, Role.CLINICIAN, Role.ADMIN) if r.value in names), None)
    if role in _RANK:
        grant = _grant(user)
        if grant is None:
            role = None
        elif _RANK[grant.role] < _RANK[role]:
            role = grant.role
    user._crs_role = role  # type: ignore[union-attr,attr-defined,unused-ignore]  # per-request cache
    return role


def assigned_role(user: AbstractBaseUser) -> str | None:
    """The role an admin set (the role's group), approved or not; for account pages only."""
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]  # ours is User
    return next((r.value for r in (Role.HEMATOLOGIST, Role.CLINICIAN, Role.ADMIN) if r.value in names), None)


def is_clinical(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Clinicians and hematologists with approved access see clinical data; admins never do."""
    return role_of(user) in (Role.CLINICIAN, Role.HEMATOLOGIST)


def is_hematologist(user: AbstractBaseUser | AnonymousUser) -> bool:
    return role_of(user) == Role.HEMATOLOGIST


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return role_of(user) == Role.ADMIN


def sees_all_teams(user: AbstractBaseUser | AnonymousUser) -> bool:
    """A hematologist marked "all care teams", with an approved grant that says so (SPEC 7)."""
    if not is_hematologist(user):
        return False
    profile = getattr(user, "profile", None)
    grant = _grant(user)
    return bool(profile is not None and profile.all_care_teams and grant and grant.all_care_teams)


def care_teams_of(user: AbstractBaseUser | AnonymousUser) -> QuerySet[CareTeam]:
    """The care teams whose patients the user sees: set by an admin and covered by the grant."""
    from patients.models import CareTeam

    if not is_clinical(user):
        return CareTeam.objects.none()
    if sees_all_teams(user):
        return CareTeam.objects.all()
    profile = getattr(user, "profile", None)
    grant = _grant(user)
    if profile is None or grant is None:
        return CareTeam.objects.none()
    if grant.all_care_teams:
        return CareTeam.objects.filter(members=profile)
    return CareTeam.objects.filter(members=profile).filter(clinical_grants=grant.pk)


def visible_patients(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Patient]:
    """Patients of the user's care teams; none for admins, anonymous and unapproved accounts."""
    from patients.models import Patient

    if not is_clinical(user):
        return Patient.objects.none()
    if sees_all_teams(user):
        return Patient.objects.all()
    return Patient.objects.filter(care_team__in=care_teams_of(user))
