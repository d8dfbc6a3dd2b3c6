"""Forms of the account administration pages and the security audit (SPEC 7)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import User
from django.utils.translation import gettext, ngettext
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
        help_text=_(
            "Clinicians and hematologists see the patients of these teams. Admins have none. "
            "Teams are created and renamed on the Care teams page."
        ),
    )
    all_care_teams = forms.BooleanField(
        label=_("All care teams"),
        required=False,
        help_text=_("Hematologists only: see the patients of every care team."),
    )


# The only user attribute these pages set; the similarity validator skips blank ones.
ACCOUNT_ATTRIBUTES = ("username",)


def password_rules() -> list[str]:
    """The rules AUTH_PASSWORD_VALIDATORS really apply, one sentence each, read from the validators.

    Built from the configured validators and their options, so the help cannot drift from
    what is enforced; a validator this function does not know speaks its own help text.
    """
    rules = []
    for validator in password_validation.get_default_password_validators():
        if isinstance(validator, password_validation.MinimumLengthValidator):
            n = validator.min_length
            rules.append(ngettext("At least %(n)d character.", "At least %(n)d characters.", n) % {"n": n})
        elif isinstance(validator, password_validation.UserAttributeSimilarityValidator):
            if set(validator.user_attributes) & set(ACCOUNT_ATTRIBUTES):
                rules.append(gettext("Not too similar to the username, or to a part of it."))
        elif isinstance(validator, password_validation.CommonPasswordValidator):
            rules.append(gettext("Not a commonly used password."))
        elif isinstance(validator, password_validation.NumericPasswordValidator):
            rules.append(gettext("Not entirely digits."))
        else:
            rules.append(str(validator.get_help_text()))
    return rules


class _NewPasswordMixin(forms.Form):
    password = forms.CharField(
        label=_("Initial password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_confirm = forms.CharField(
        label=_("Repeat the password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read when the form is built: the active language, and the validators as configured now.
        self.fields["password"].help_text = " ".join(password_rules())

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


class CareTeamForm(forms.Form):
    # The length and uniqueness checks live in the service, so a refusal names the field the same way.
    name = forms.CharField(label=_("Care team name"), max_length=200)


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
