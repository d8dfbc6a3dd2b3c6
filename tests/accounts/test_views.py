"""Account administration pages: admin-only, CSRF-protected, audited (SPEC 7, 8.1)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from crsrisk.accounts import services
from crsrisk.accounts.access import get_patient_or_404
from crsrisk.accounts.models import AccessLog, SecurityEvent
from crsrisk.accounts.tokens import token_digest
from patients.models import CareTeam, Patient

PASSWORD = "violet-kettle-harbour-42"


@pytest.fixture
def admin_client(client: Client, site_admin: User) -> Client:
    client.force_login(site_admin)
    return client


ADMIN_PAGES = ["accounts:user-list", "accounts:user-create", "accounts:security-audit"]


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_pages_answer_admins(admin_client: Client, name: str) -> None:
    response = admin_client.get(reverse(name))
    assert response.status_code == 200
    assert b'href="/accounts/users/"' in response.content  # the nav block


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_pages_refuse_clinical_roles(
    client: Client, clinician: User, hematologist: User, name: str
) -> None:
    for user in (clinician, hematologist):
        client.force_login(user)
        assert client.get(reverse(name)).status_code == 403


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_pages_send_anonymous_to_login(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_create_account_through_the_page(admin_client: Client, team: CareTeam) -> None:
    response = admin_client.post(
        reverse("accounts:user-create"),
        {
            "username": "nurse7",
            "role": "clinician",
            "care_teams": [team.pk],
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    user = User.objects.get(username="nurse7")
    assert response.status_code == 302 and response["Location"] == reverse(
        "accounts:user-edit", args=[user.pk]
    )
    assert list(user.profile.care_teams.all()) == [team]
    assert SecurityEvent.objects.filter(kind="account_created", username="nurse7").exists()


def test_create_refusal_names_the_field_and_keeps_the_input(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("accounts:user-create"),
        {"username": "nurse8", "role": "clinician", "password": "short", "password_confirm": "short"},
    )
    assert response.status_code == 200
    assert not User.objects.filter(username="nurse8").exists()
    assert "at least 12 characters" in response.content.decode()
    assert 'value="nurse8"' in response.content.decode()
    assert 'value="short"' not in response.content.decode()  # passwords are never echoed back


def test_edit_role_and_teams(admin_client: Client, clinician: User, other_team: CareTeam) -> None:
    response = admin_client.post(
        reverse("accounts:user-edit", args=[clinician.pk]),
        {"role": "hematologist", "care_teams": [other_team.pk], "all_care_teams": "on"},
    )
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert clinician.groups.get().name == "hematologist"
    assert clinician.profile.all_care_teams


def test_edit_page_refuses_unknown_user(admin_client: Client) -> None:
    assert admin_client.get(reverse("accounts:user-edit", args=[99999])).status_code == 404


@pytest.mark.parametrize(
    "name",
    ["accounts:user-deactivate", "accounts:user-unlock", "accounts:token-revoke"],
)
def test_actions_are_post_only(admin_client: Client, clinician: User, name: str) -> None:
    assert admin_client.get(reverse(name, args=[clinician.pk])).status_code == 405


def test_deactivate_through_the_page(admin_client: Client, clinician: User) -> None:
    response = admin_client.post(reverse("accounts:user-deactivate", args=[clinician.pk]))
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert not clinician.is_active
    assert User.objects.filter(pk=clinician.pk).exists()  # never deleted


def test_password_reset_through_the_page(admin_client: Client, clinician: User) -> None:
    response = admin_client.post(
        reverse("accounts:user-password", args=[clinician.pk]),
        {"password": PASSWORD, "password_confirm": PASSWORD},
    )
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert clinician.check_password(PASSWORD)


def test_password_reset_refuses_a_mismatch(admin_client: Client, clinician: User) -> None:
    response = admin_client.post(
        reverse("accounts:user-password", args=[clinician.pk]),
        {"password": PASSWORD, "password_confirm": PASSWORD + "x"},
    )
    assert response.status_code == 200
    assert "differ" in response.content.decode()


def test_token_is_shown_once_to_its_owner_and_not_cached(admin_client: Client, clinician: User) -> None:
    owner = Client()
    owner.force_login(clinician)
    response = owner.post(reverse("accounts:token-create"), {"password": "correct-horse-battery-9"})
    assert response.status_code == 200
    shown = re.findall(r"\b[0-9a-f]{40}\b", response.content.decode())
    assert [token_digest(k) for k in shown] == [Token.objects.get(user=clinician).key]
    key = shown[0]
    assert "no-store" in response["Cache-Control"]
    assert key not in owner.get(reverse("accounts:account")).content.decode()
    again = admin_client.get(reverse("accounts:user-edit", args=[clinician.pk]))
    assert key not in again.content.decode()
    assert key not in admin_client.get(reverse("accounts:security-audit")).content.decode()


def test_token_revoke_through_the_page(admin_client: Client, clinician: User) -> None:
    services.token_issue(actor=None, user=clinician)
    admin_client.post(reverse("accounts:token-revoke", args=[clinician.pk]))
    assert not Token.objects.filter(user=clinician).exists()


def test_unlock_through_the_page(admin_client: Client, clinician: User) -> None:
    response = admin_client.post(reverse("accounts:user-unlock", args=[clinician.pk]))
    assert response.status_code == 302
    assert SecurityEvent.objects.filter(kind="unlock", username="clin").exists()


def test_user_list_shows_roles_teams_and_state(
    admin_client: Client, clinician: User, hematologist: User
) -> None:
    services.user_deactivate(actor=None, user=hematologist)
    html = admin_client.get(reverse("accounts:user-list")).content.decode()
    assert "clin" in html and "Ward 7" in html and "deactivated" in html


def test_user_list_query_count_is_constant(
    admin_client: Client, team: CareTeam, django_assert_max_num_queries
) -> None:
    for i in range(15):
        services.user_create(
            actor=None, username=f"n{i}", password=PASSWORD, role="clinician", care_teams=[team]
        )
    with django_assert_max_num_queries(12):
        admin_client.get(reverse("accounts:user-list"))


# --- security audit --------------------------------------------------------------------


@pytest.fixture
def audit_data(rf, site_admin: User, clinician: User, patient: Patient) -> None:
    services.security_event_record(kind="login", username="clin", actor=clinician, ip_address="10.0.0.1")
    services.security_event_record(kind="login_failed", username="mallory", ip_address="10.0.0.9")
    request = rf.get("/patients/P001/")
    request.user = clinician
    get_patient_or_404(request, "P001", "patients:detail")


def test_audit_shows_events_and_access_log(admin_client: Client, audit_data: None) -> None:
    html = admin_client.get(reverse("accounts:security-audit")).content.decode()
    assert "mallory" in html and "10.0.0.9" in html
    assert "P001" in html and "patients:detail" in html


def test_audit_shows_no_clinical_values(admin_client: Client, audit_data: None, patient: Patient) -> None:
    html = admin_client.get(reverse("accounts:security-audit")).content.decode()
    assert patient.name not in html  # "Test Patient": identifiers only, no clinical content
    # The patient's care team is not shown; the teams an account was granted are account data.
    assert "Ward 7" not in html.replace("care_teams=Ward 7", "")


def test_audit_filters_by_kind(admin_client: Client, audit_data: None) -> None:
    response = admin_client.get(reverse("accounts:security-audit"), {"kind": "login_failed"})
    events = list(response.context["events"])
    assert [e.username for e in events] == ["mallory"]
    assert response.context["accesses"] is None  # the access log has no kinds


def test_audit_filters_by_username(admin_client: Client, audit_data: None) -> None:
    response = admin_client.get(reverse("accounts:security-audit"), {"username": "CLIN"})
    assert {e.username for e in response.context["events"]} == {"clin"}
    assert {a.username for a in response.context["accesses"]} == {"clin"}


def test_audit_filters_by_date_range(admin_client: Client, audit_data: None) -> None:
    today = timezone.localdate()
    response = admin_client.get(
        reverse("accounts:security-audit"), {"date_from": today.isoformat(), "date_to": today.isoformat()}
    )
    assert len(response.context["events"]) >= 2
    tomorrow = (today + timedelta(days=1)).isoformat()
    response = admin_client.get(reverse("accounts:security-audit"), {"date_from": tomorrow})
    assert len(response.context["events"]) == 0 and len(response.context["accesses"]) == 0


def test_audit_filters_access_log_only(admin_client: Client, audit_data: None) -> None:
    response = admin_client.get(reverse("accounts:security-audit"), {"source": "access", "mrn": "P001"})
    assert response.context["events"] is None
    assert [a.mrn for a in response.context["accesses"]] == ["P001"]


def test_audit_refuses_a_backwards_date_range(admin_client: Client) -> None:
    response = admin_client.get(
        reverse("accounts:security-audit"), {"date_from": "2025-03-02", "date_to": "2025-03-01"}
    )
    assert "before the start date" in response.content.decode()


def test_access_log_rows_are_created_for_views(audit_data: None) -> None:
    assert AccessLog.objects.filter(mrn="P001", granted=True, username="clin").count() == 1


# --- own password ----------------------------------------------------------------------


def test_password_change_is_recorded(client: Client, clinician: User) -> None:
    client.force_login(clinician)
    response = client.post(
        reverse("accounts:password-change"),
        {"old_password": "correct-horse-battery-9", "new_password1": PASSWORD, "new_password2": PASSWORD},
    )
    assert response.status_code == 302
    event = SecurityEvent.objects.get(kind="password_changed")
    assert event.username == "clin" and PASSWORD not in event.detail


def test_an_admin_refused_a_clinical_page_keeps_the_admin_links_and_is_told_why(site_admin):
    from django.test import Client
    from django.urls import reverse

    c = Client()
    c.force_login(site_admin)
    response = c.get(reverse("patients:ward"))
    assert response.status_code == 403
    html = response.content.decode()
    assert reverse("accounts:user-list") in html
    assert "see no clinical data" in html
