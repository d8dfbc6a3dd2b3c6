"""Account administration, the security audit and the user's own password (SPEC 7, 8.1)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from crsrisk.accounts import selectors, services
from crsrisk.accounts.access import admin_required, client_ip, hematologist_required
from crsrisk.accounts.forms import (
    AuditFilterForm,
    CareTeamForm,
    NewPasswordChangeForm,
    PasswordSetForm,
    TokenCreateForm,
    UserCreateForm,
    UserEditForm,
)
from crsrisk.accounts.middleware import FORCED_CHANGE_SESSION_KEY, mark_password_change_required
from crsrisk.accounts.models import ClinicalGrant
from crsrisk.accounts.roles import is_clinical
from patients.models import CareTeam

AUDIT_PAGE_SIZE = 100


def _add_errors(form: Form, exc: ValidationError) -> None:
    """Put a service's field errors on the form's fields, the rest on the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


@admin_required
def user_list(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/user_list.html", {"rows": selectors.user_rows()})


@admin_required
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.user_create(
                actor=request.user,
                username=data["username"],
                password=data["password"],
                role=data["role"],
                care_teams=data["care_teams"],
                all_care_teams=data["all_care_teams"],
                ip_address=client_ip(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            if data["role"] in services.CLINICAL_ROLES:
                done = _(
                    "Account %(name)s created. Its clinical access waits for a hematologist's approval. "
                    "The first sign-in asks for a new password."
                )
            else:
                done = _("Account %(name)s created. The first sign-in asks for a new password.")
            messages.success(request, done % {"name": user.username})
            return redirect("accounts:user-edit", pk=user.pk)
    return render(request, "accounts/user_create.html", {"form": form})


@admin_required
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    row = selectors.user_row(user)
    initial: dict[str, Any] = {
        "role": row.role,
        "care_teams": list(user.profile.care_teams.all()) if row.care_teams else [],
    }
    initial["all_care_teams"] = row.all_care_teams
    form = UserEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_update(
                actor=request.user, user=user, ip_address=client_ip(request), **form.cleaned_data
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            pending = ClinicalGrant.objects.filter(user=user, status=ClinicalGrant.Status.PENDING).exists()
            if pending:
                done = _("Account %(name)s changed. What it adds waits for a hematologist's approval.")
            else:
                done = _("Account %(name)s changed.")
            messages.success(request, done % {"name": user.username})
            return redirect("accounts:user-edit", pk=user.pk)
    return render(
        request,
        "accounts/user_edit.html",
        {
            "form": form,
            "row": row,
            "subject": user,
            "token": selectors.token_state(user),
            "history": selectors.account_history(user),
        },
    )


def _post_action(request: HttpRequest, pk: int, action: Any, done: str) -> HttpResponse:
    """Run one account service on POST and come back to the account's page with a message."""
    user = get_object_or_404(User, pk=pk)
    try:
        action(user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done % {"name": user.username})
    return redirect("accounts:user-edit", pk=user.pk)


@admin_required
@require_POST
def user_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    return _post_action(
        request,
        pk,
        lambda u: services.user_deactivate(actor=request.user, user=u, ip_address=client_ip(request)),
        _("Account %(name)s deactivated. It is kept, with its history, and can no longer sign in."),
    )


@admin_required
@require_POST
def user_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    return _post_action(
        request,
        pk,
        lambda u: services.user_reactivate(actor=request.user, user=u, ip_address=client_ip(request)),
        _("Account %(name)s reactivated."),
    )


@admin_required
@require_POST
def user_unlock(request: HttpRequest, pk: int) -> HttpResponse:
    return _post_action(
        request,
        pk,
        lambda u: services.user_unlock(
            actor=request.user, username=u.username, ip_address=client_ip(request)
        ),
        _("Account %(name)s unlocked."),
    )


@admin_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    return _post_action(
        request,
        pk,
        lambda u: services.token_revoke(actor=request.user, user=u, ip_address=client_ip(request)),
        _("The API token of %(name)s is revoked."),
    )


@admin_required
def user_password(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    form = PasswordSetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # An approved clinical access is withdrawn by the reset and waits for approval again.
        had_access = is_clinical(User.objects.get(pk=user.pk))
        try:
            revoked = services.user_password_reset(
                actor=request.user,
                user=user,
                password=form.cleaned_data["password"],
                ip_address=client_ip(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            done = (
                _(
                    "The password of %(name)s is reset; their sessions ended and their API token is "
                    "revoked. They choose a new password when they next sign in."
                )
                if revoked
                else _(
                    "The password of %(name)s is reset; their sessions ended. They choose a new "
                    "password when they next sign in."
                )
            )
            messages.success(request, done % {"name": user.username})
            if had_access:
                messages.warning(
                    request,
                    _(
                        "The clinical access of %(name)s is withdrawn: a hematologist of their care "
                        "team approves it again before they see clinical data."
                    )
                    % {"name": user.username},
                )
            return redirect("accounts:user-edit", pk=user.pk)
    return render(request, "accounts/user_password.html", {"form": form, "subject": user})


@admin_required
def care_team_list(request: HttpRequest) -> HttpResponse:
    """The care teams (names only) and a form to create one."""
    form = CareTeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.care_team_create(
                actor=request.user, name=form.cleaned_data["name"], ip_address=client_ip(request)
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Care team %(name)s created.") % {"name": team.name})
            return redirect("accounts:care-team-list")
    return render(request, "accounts/care_team_list.html", {"form": form, "teams": selectors.care_teams()})


@admin_required
def care_team_rename(request: HttpRequest, pk: int) -> HttpResponse:
    team = get_object_or_404(CareTeam, pk=pk)
    form = CareTeamForm(request.POST or None, initial={"name": team.name})
    if request.method == "POST" and form.is_valid():
        old = team.name
        try:
            team = services.care_team_rename(
                actor=request.user, team=team, name=form.cleaned_data["name"], ip_address=client_ip(request)
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(
                request,
                _("Care team %(old)s renamed to %(new)s.") % {"old": old, "new": team.name},
            )
            return redirect("accounts:care-team-list")
    return render(request, "accounts/care_team_rename.html", {"form": form, "team": team})


@admin_required
def security_audit(request: HttpRequest) -> HttpResponse:
    """Security events and the access log, filtered; no clinical values (SPEC 7)."""
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    source = filters.get("source", "")
    events = accesses = None
    if form.is_bound and not form.is_valid():
        source = "none"  # show the errors, not an unfiltered list
    if source in ("", "security"):
        events = Paginator(selectors.security_events(filters), AUDIT_PAGE_SIZE).get_page(
            request.GET.get("ev_page")
        )
    if source in ("", "access") and not filters.get("kind"):
        accesses = Paginator(selectors.access_entries(filters), AUDIT_PAGE_SIZE).get_page(
            request.GET.get("ac_page")
        )
    query = request.GET.copy()
    query.pop("ev_page", None)
    query.pop("ac_page", None)
    return render(
        request,
        "accounts/security_audit.html",
        {"form": form, "events": events, "accesses": accesses, "query": query.urlencode()},
    )


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change one's own password; the other sessions of the account end (session auth hash), and
    so does its API token: a credential never outlives the password it was created under."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")
    form_class = NewPasswordChangeForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["forced"] = bool(self.request.session.get(FORCED_CHANGE_SESSION_KEY))
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        revoked = services.password_changed_record(
            user=self.request.user,  # type: ignore[arg-type]  # login required: a User
            ip_address=client_ip(self.request),
        )
        mark_password_change_required(self.request, False)
        if revoked:
            done = _(
                "Your password is changed. Your other sessions have ended and your API token is revoked."
            )
        else:
            done = _("Your password is changed. Your other sessions have ended.")
        messages.success(self.request, done)
        return response


# --- one's own account and API token -----------------------------------------------------------


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """One's own account: role, care teams, whether clinical access is approved, the API token."""
    return render(request, "accounts/account.html", _account_context(request, TokenCreateForm(request.user)))


def _account_context(request: HttpRequest, form: Form) -> dict[str, Any]:
    return {
        "row": selectors.user_row(request.user),  # type: ignore[arg-type]  # login_required: a User
        "token": selectors.token_state(request.user),  # type: ignore[arg-type]  # a User
        "can_have_token": is_clinical(request.user),
        "form": form,
    }


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    """The owner creates their API token after typing their password; it is shown once, never cached."""
    if not is_clinical(request.user):
        raise PermissionDenied(_("API tokens are for accounts with approved clinical access."))
    form = TokenCreateForm(request.user, request.POST)
    if form.is_valid():
        try:
            key = services.token_issue(user=request.user, actor=request.user, ip_address=client_ip(request))  # type: ignore[arg-type]  # login_required: a User
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            response = render(request, "accounts/token_issued.html", {"key": key})
            add_never_cache_headers(response)
            return response
    return render(request, "accounts/account.html", _account_context(request, form))


@login_required
@require_POST
def own_token_revoke(request: HttpRequest) -> HttpResponse:
    try:
        services.token_revoke(actor=request.user, user=request.user, ip_address=client_ip(request))  # type: ignore[arg-type]  # login_required: a User
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Your API token is revoked."))
    return redirect("accounts:account")


# --- approvals of clinical access (hematologists) ------------------------------------------------


@hematologist_required
def grant_list(request: HttpRequest) -> HttpResponse:
    """Requests for clinical access that this hematologist may decide, a second person to the admin."""
    grants = selectors.grants_to_decide(request.user)  # type: ignore[arg-type]  # signed in: a User
    return render(request, "accounts/grant_list.html", {"grants": grants})


def _decide(request: HttpRequest, pk: int, decide: Any, done: str) -> HttpResponse:
    grant = get_object_or_404(ClinicalGrant.objects.select_related("user"), pk=pk)
    try:
        decide(actor=request.user, grant=grant, ip_address=client_ip(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done % {"name": grant.user.username})
    return redirect("accounts:grant-list")


@hematologist_required
@require_POST
def grant_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.grant_approve, _("Clinical access of %(name)s approved."))


@hematologist_required
@require_POST
def grant_refuse(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.grant_refuse, _("Clinical access of %(name)s refused."))
