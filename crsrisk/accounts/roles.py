"""Role and care-team helpers used by every view, export and API endpoint (SPEC 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crsrisk.accounts.models import Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.db.models import QuerySet

    from patients.models import Patient


def role_of(user: AbstractBaseUser | AnonymousUser) -> str | None:
    """Return the user's role name, or None. Cached on the user object."""
    if not user.is_authenticated:
        return None
    cached = getattr(user, "_crs_role", "unset")
    if cached != "unset":
        return cached  # type: ignore[no-any-return,unused-ignore]  # set below
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr,attr-defined,unused-ignore]  # AbstractBaseUser has no groups; ours is User
    role = next((r.value for r in (Role.HEMATOLOGIST, Role.CLINICIAN, Role.ADMIN) if r.value in names), None)
    user._crs_role = role  # type: ignore[union-attr,attr-defined,unused-ignore]  # per-request cache
    return role


def is_clinical(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Clinicians and hematologists see clinical data; admins never do."""
    return role_of(user) in (Role.CLINICIAN, Role.HEMATOLOGIST)


def is_hematologist(user: AbstractBaseUser | AnonymousUser) -> bool:
    return role_of(user) == Role.HEMATOLOGIST


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return role_of(user) == Role.ADMIN


def visible_patients(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Patient]:
    """Patients of the user's care teams; none for admins and anonymous users."""
    from patients.models import Patient

    if not is_clinical(user):
        return Patient.objects.none()
    profile = getattr(user, "profile", None)
    if profile is None:
        return Patient.objects.none()
    if profile.all_care_teams and is_hematologist(user):
        return Patient.objects.all()
    return Patient.objects.filter(care_team__members=profile)
