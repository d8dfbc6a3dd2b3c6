"""API token authentication that records when each token was last used (issue 9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication

from crsrisk.accounts.models import Profile
from crsrisk.accounts.tokens import token_digest

# One write per minute at most per token: enough for "last used", no write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenAuthentication(authentication.TokenAuthentication):  # type: ignore[misc]  # DRF is untyped here
    """DRF's token scheme (``Authorization: Token …``), looked up by the token's digest (the
    database never holds the token itself), plus the profile's ``token_last_used_at``."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        user, token = super().authenticate_credentials(token_digest(key))
        now = timezone.now()
        Profile.objects.filter(user=user).filter(
            Q(token_last_used_at__isnull=True) | Q(token_last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(token_last_used_at=now)
        return user, token
