from django.contrib.auth import views as auth_views
from django.urls import path

from crsrisk.accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password-change"),
    path("users/", views.user_list, name="user-list"),
    path("users/new/", views.user_create, name="user-create"),
    path("users/<int:pk>/", views.user_edit, name="user-edit"),
    path("users/<int:pk>/deactivate/", views.user_deactivate, name="user-deactivate"),
    path("users/<int:pk>/reactivate/", views.user_reactivate, name="user-reactivate"),
    path("users/<int:pk>/password/", views.user_password, name="user-password"),
    path("users/<int:pk>/unlock/", views.user_unlock, name="user-unlock"),
    path("users/<int:pk>/token/revoke/", views.token_revoke, name="token-revoke"),
    path("teams/", views.care_team_list, name="care-team-list"),
    path("teams/<int:pk>/", views.care_team_rename, name="care-team-rename"),
    path("audit/", views.security_audit, name="security-audit"),
    # One's own account and API token: created by its owner only (issue 9).
    path("me/", views.account, name="account"),
    path("me/token/", views.token_create, name="token-create"),
    path("me/token/revoke/", views.own_token_revoke, name="own-token-revoke"),
    # Clinical access waiting for a hematologist's approval.
    path("approvals/", views.grant_list, name="grant-list"),
    path("approvals/<int:pk>/approve/", views.grant_approve, name="grant-approve"),
    path("approvals/<int:pk>/refuse/", views.grant_refuse, name="grant-refuse"),
]
