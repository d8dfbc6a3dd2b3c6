"""Read-only Django admin for the clinical reference data (care teams, site parameters, models).

Every clinical write goes through the services, which recompute derived
results; the admin therefore may look but never add, change or delete. Patient
data is not in the admin at all (issue 9): it could not scope reads to the care
teams nor write them to the access log.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from crsrisk.accounts.roles import is_clinical


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete; visible only to clinical roles (admins see no clinical data)."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff and is_clinical(request.user))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)
