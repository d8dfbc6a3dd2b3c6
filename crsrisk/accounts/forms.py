"""Forms of the account administration pages and the security audit (SPEC 7)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _

from crsrisk.accounts.models import Role, SecurityEvent
from patients.models import CareTeam


class _RoleTeamsForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)
    care_teams = forms.ModelMultipleChoiceField(
        label=_("Care teams"),
        queryset=CareTeam.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Clinicians and hematologists see the patients of these teams. Admins have none."),
    )
    all_care_teams = forms.BooleanField(
        label=_("All care teams"),
        required=False,
        help_text=_("Hematologists only: see the patients of every care team."),
    )


class _NewPasswordMixin(forms.Form):
    password = forms.CharField(
        label=_("Initial password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 12 characters, not a common password. No other rules."),
    )
    password_confirm = forms.CharField(
        label=_("Repeat the password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password") and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", _("The two passwords differ: type the same password twice."))
        return data


class UserCreateForm(_NewPasswordMixin, _RoleTeamsForm):
    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        validators=[User.username_validator],
        help_text=_("Letters, digits and @ . + - _ only; at most 150 characters."),
    )

    field_order = ["username", "role", "care_teams", "all_care_teams", "password", "password_confirm"]


class UserEditForm(_RoleTeamsForm):
    pass


class PasswordSetForm(_NewPasswordMixin):
    pass


class NewPasswordChangeForm(PasswordChangeForm):
    """Django's own form; a "new" password equal to the old one is no change (it may be the
    password an admin chose, which the admin still knows)."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        password = data.get("new_password2")
        if password and not self.has_error("new_password2") and self.user.check_password(password):
            self.add_error("new_password2", _("Choose a password different from the current one."))
        return data


class TokenCreateForm(forms.Form):
    """Creating an API token asks for the account's password again: a borrowed session is not enough."""

    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self) -> str:
        password = str(self.cleaned_data["password"])
        if not self.user.check_password(password):
            raise forms.ValidationError(_("This is not your password."))
        return password


AUDIT_SOURCES = [
    ("", _("security events and access log")),
    ("security", _("security events")),
    ("access", _("access log")),
]


class AuditFilterForm(forms.Form):
    source = forms.ChoiceField(label=_("Show"), choices=AUDIT_SOURCES, required=False)
    kind = forms.ChoiceField(
        label=_("Event"), choices=[("", _("any event"))] + list(SecurityEvent.Kind.choices), required=False
    )
    username = forms.CharField(label=_("Username"), max_length=150, required=False)
    mrn = forms.CharField(label=_("MRN (access log)"), max_length=32, required=False)
    date_from = forms.DateField(
        label=_("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="YYYY-MM-DD",
    )
    date_to = forms.DateField(
        label=_("To (inclusive)"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", _("The end date is before the start date."))
        return data
