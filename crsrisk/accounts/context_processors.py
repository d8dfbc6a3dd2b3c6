"""Template context: the current user's role."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from crsrisk.accounts.roles import role_of


def roles(request: HttpRequest) -> dict[str, Any]:
    role = role_of(request.user) if hasattr(request, "user") else None
    return {
        "user_role": role,
        "is_clinical": role in ("clinician", "hematologist"),
        "is_hematologist": role == "hematologist",
        "is_site_admin": role == "admin",
    }
