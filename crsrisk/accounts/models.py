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
    # The approved grant in force: the role and care teams above give clinical access only as far
    # as it covers them (roles.visible_patients); null means no clinical access at all.
    clinical_grant = models.ForeignKey(
        "ClinicalGrant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Set when an admin creates the account or resets its password: the admin knows that password,
    # so the next sign-in asks for a new one before anything else.
    must_change_password = models.BooleanField(default=False)
    # When the user's API token last authenticated a request (the key itself is never shown again).
    token_last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


class ClinicalGrant(models.Model):
    """A clinical role with its care teams (or all of them), asked for by an admin.

    It gives clinical access only once a second person, a hematologist, approves it (issue 9):
    an admin alone can never give an account, or themselves, a way to clinical data.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting for approval")
        APPROVED = "approved", _("approved")
        REFUSED = "refused", _("refused")
        WITHDRAWN = "withdrawn", _("withdrawn")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="clinical_grants"
    )
    role = models.CharField(
        max_length=16,
        choices=[
            (Role.CLINICIAN.value, Role.CLINICIAN.label),
            (Role.HEMATOLOGIST.value, Role.HEMATOLOGIST.label),
        ],
    )
    care_teams = models.ManyToManyField("patients.CareTeam", blank=True, related_name="clinical_grants")
    all_care_teams = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # How a grant with no deciding person came about (demo seed, test fixture, command line).
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            # One request at a time: a new request by an admin withdraws the one before.
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(status="pending"), name="accounts_one_pending_grant"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} for {self.user} ({self.status})"


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
        GRANT_REQUESTED = "grant_requested", _("clinical access requested")
        GRANT_APPROVED = "grant_approved", _("clinical access approved")
        GRANT_REFUSED = "grant_refused", _("clinical access refused")
        GRANT_WITHDRAWN = "grant_withdrawn", _("clinical access request withdrawn")

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
