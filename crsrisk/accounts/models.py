"""Roles, care-team membership, the access log and the security audit (SPEC 7)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    """Each role is a Django group of the same name."""

    CLINICIAN = "clinician", _("clinician")
    HEMATOLOGIST = "hematologist", _("hematologist")
    ADMIN = "admin", _("admin")


class Profile(models.Model):
    """Care-team membership of a user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    care_teams = models.ManyToManyField("patients.CareTeam", blank=True, related_name="members")
    # A hematologist account may be marked "all care teams" (SPEC 7).
    all_care_teams = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"profile of {self.user}"


class AccessLog(models.Model):
    """Who opened or exported which patient record, and when. Append-only."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    username = models.CharField(max_length=150)
    mrn = models.CharField(max_length=32, db_index=True)
    page = models.CharField(max_length=200)
    granted = models.BooleanField(default=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.page} {self.mrn}"


class SecurityEvent(models.Model):
    """Account, role, login, lockout, token and care-team events. Append-only; no clinical values."""

    class Kind(models.TextChoices):
        LOGIN = "login", _("login")
        LOGOUT = "logout", _("logout")
        LOGIN_FAILED = "login_failed", _("login failed")
        LOCKOUT = "lockout", _("lockout")
        UNLOCK = "unlock", _("unlock")
        ACCOUNT_CREATED = "account_created", _("account created")
        ACCOUNT_CHANGED = "account_changed", _("account changed")
        ACCOUNT_DEACTIVATED = "account_deactivated", _("account deactivated")
        PASSWORD_RESET = "password_reset", _("password reset")
        PASSWORD_CHANGED = "password_changed", _("password changed")
        TOKEN_ISSUED = "token_issued", _("API token issued")
        TOKEN_REVOKED = "token_revoked", _("API token revoked")
        CARE_TEAM_CREATED = "care_team_created", _("care team created")
        CARE_TEAM_RENAMED = "care_team_renamed", _("care team renamed")

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind} {self.username}"
