"""API tokens are stored as digests, never as the token (docs/security.md).

DRF's ``Token`` table keeps its shape: its 40-character ``key`` holds the first 40 hex digits
(160 bits) of the SHA-256 of the token the owner was shown once. A copy of the database, a
backup or a read-only admin view therefore opens nothing. The token itself is 160 random bits,
so a plain hash (no salt, no stretching) is enough: there is nothing to guess from a digest.
"""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

DIGEST_HEX_CHARS = 40  # the width of DRF's Token.key


def token_digest(raw: str) -> str:
    """What the database stores for the token ``raw``."""
    return hashlib.sha256(raw.encode()).hexdigest()[:DIGEST_HEX_CHARS]


def token_create(user: User) -> str:
    """Store a new token's digest for ``user`` and return the token, to show once.

    The writer beneath ``services.token_issue`` (which replaces the old token and audits).
    """
    raw = secrets.token_hex(20)
    Token.objects.create(user=user, key=token_digest(raw))
    return raw
