"""Account administration, the security audit and the user's own password (SPEC 7, 8.1)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from crsrisk.accounts import selectors, services
from crsrisk.accounts.access import admin_required, client_ip
from crsrisk.accounts.forms import (
    AuditFilterForm,
    CareTeamForm,
    PasswordSetForm,
    UserCreateForm,
    UserEditForm,
)
from crsrisk.accounts.models import SecurityEvent
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
            messages.success(request, _("Account %(name)s created.") % {"name": user.username})
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
            messages.success(request, _("Account %(name)s changed.") % {"name": user.username})
            return redirect("accounts:user-edit", pk=user.pk)
    return render(request, "accounts/user_edit.html", {"form": form, "row": row, "subject": user})


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
@require_POST
def token_issue(request: HttpRequest, pk: int) -> HttpResponse:
    """Issue a token and show it once; the page is never cached."""
    user = get_object_or_404(User, pk=pk)
    try:
        key = services.token_issue(actor=request.user, user=user, ip_address=client_ip(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("accounts:user-edit", pk=user.pk)
    response = render(request, "accounts/token_issued.html", {"subject": user, "key": key})
    add_never_cache_headers(response)
    return response


@admin_required
def user_password(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    form = PasswordSetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_password_reset(
                actor=request.user,
                user=user,
                password=form.cleaned_data["password"],
                ip_address=client_ip(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(
                request,
                _("The password of %(name)s is reset; their sessions ended.") % {"name": user.username},
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
    """Change one's own password; the other sessions of the account end (session auth hash)."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        services.security_event_record(
            kind=SecurityEvent.Kind.PASSWORD_CHANGED,
            username=self.request.user.get_username(),
            actor=self.request.user,
            ip_address=client_ip(self.request),
        )
        messages.success(self.request, _("Your password is changed. Your other sessions have ended."))
        return response
