"""The Django admin may look at accounts but never write them (SPEC 7).

Accounts are created, changed and deactivated through the audited account pages
(``accounts:user-list``), never deleted; API tokens are issued there and shown once, so the
admin does not list them. The access log and security events are not in the admin at all:
the security audit page shows them, read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.http import HttpRequest
from rest_framework.authtoken.models import TokenProxy

# DRF's token admin (TokenProxy) is unregistered below: it would list every key in clear text.


class _ViewOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


if TYPE_CHECKING:
    _UserAdmin = UserAdmin[User]
else:
    _UserAdmin = UserAdmin  # generic only in django-stubs


class ViewOnlyUserAdmin(_ViewOnly, _UserAdmin):
    list_display = ["username", "is_active", "last_login", "date_joined"]
    list_filter = ["is_active", "groups"]


class ViewOnlyGroupAdmin(_ViewOnly, GroupAdmin):
    pass


for model in (User, Group, TokenProxy):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
admin.site.register(User, ViewOnlyUserAdmin)
admin.site.register(Group, ViewOnlyGroupAdmin)


# django-q2's Schedule admin lets a superuser queue any callable (for example one returning a
# clinical user's API token) and read its result: no admin path to a clinical credential (f2).
from django_q.models import OrmQ, Schedule  # noqa: E402

for _model in (Schedule, OrmQ):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
