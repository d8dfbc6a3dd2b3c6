"""``Idempotency-Key`` on API writes: a retry after a lost response stores nothing twice (SPEC 9).

A client sends ``Idempotency-Key: <unique text>`` with a ``POST`` (or ``PUT``/``PATCH``).
The whole request then runs in one transaction:

1. ``claim`` looks the key up for this user. A recorded answer to the same request
   (method, path with query string, parsed body) is replayed, status and body, and nothing
   runs; a recorded answer to another request is refused with 409. Otherwise the key is
   reserved by inserting its row: the unique index makes a concurrent request with the
   same key wait there until this transaction ends, and then replay its answer.
2. The view runs and its services write, inside that transaction.
3. ``finish`` keeps the row with the answer when the request stored something (a 2xx),
   and removes it otherwise, so a refused request (400, 409, 422) can be sent again
   with the same key once its body is fixed.

Keys are kept at least ``IDEMPOTENCY_KEY_HOURS``; older ones are purged on the user's
next keyed write and by ``manage.py purge_idempotency_keys``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from patients.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
METHODS = frozenset({"POST", "PUT", "PATCH"})
IDEMPOTENCY_KEY_HOURS = 24  # SPEC 9 / issue 12: kept at least a day, so any sane retry finds it
RETRY_AFTER_SECONDS = 1
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII without spaces, as UUIDs and ULIDs are


class IdempotencyAnswer(Exception):  # noqa: N818  # control flow: answer without running the view
    """Raised by ``claim`` to answer the request at once; ``response`` is the answer."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _refusal(code: int, detail: str, headers: dict[str, str] | None = None) -> IdempotencyAnswer:
    return IdempotencyAnswer(
        Response({"detail": detail, "errors": {HEADER: [detail]}}, code, headers=headers)
    )


def wants_key(request: Request) -> bool:
    """Whether this request asks for idempotency (a write with the header)."""
    return request.method in METHODS and HEADER in request.headers


def expires_before(now: datetime) -> datetime:
    """Keys created before this moment may be purged."""
    return now - timedelta(hours=IDEMPOTENCY_KEY_HOURS)


def purge(*, before: datetime, user_id: int | None = None) -> int:
    """Delete keys created before ``before`` (of one user, or of all); return how many."""
    rows = IdempotencyKey.objects.filter(created_at__lt=before)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    return rows.delete()[0]


def fingerprint(request: Request) -> str:
    """SHA-256 of method, path with query string, and the parsed body (keys sorted).

    The parsed body, not the raw bytes: the parsers read the stream without Django's
    in-memory size limit, and the same JSON sent with its keys in another order is the
    same request.
    """
    data = request.data  # a body that cannot be parsed is refused here (400/415), before any key
    if hasattr(data, "lists"):  # a form body
        data = dict(data.lists())
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.get_full_path()}\n".encode())
    digest.update(body.encode())
    return digest.hexdigest()


def replay(row: IdempotencyKey) -> HttpResponse:
    """The recorded answer, byte for byte, marked as a replay."""
    response = HttpResponse(row.body, status=row.status_code, content_type=row.content_type or None)
    response[REPLAYED_HEADER] = "true"
    return response


def claim(request: Request) -> IdempotencyKey:
    """Reserve the request's key inside the current transaction, or raise ``IdempotencyAnswer``."""
    key = request.headers[HEADER]
    if not _KEY.match(key):
        raise _refusal(
            status.HTTP_400_BAD_REQUEST,
            f"{HEADER} must be 1-255 printable ASCII characters without spaces, e.g. a UUID.",
        )
    now = timezone.now()
    user_id = request.user.pk
    purge(before=expires_before(now), user_id=user_id)
    print_ = fingerprint(request)
    for _attempt in range(2):
        found = IdempotencyKey.objects.filter(user_id=user_id, key=key).first()
        if found is not None:
            if found.fingerprint != print_:
                raise _refusal(
                    status.HTTP_409_CONFLICT,
                    f"{HEADER} {key!r} was already used for another request ({found.method} {found.path}, "
                    "or another body); nothing was stored. Use a new key for a new request.",
                )
            raise IdempotencyAnswer(replay(found))
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    user_id=user_id,
                    key=key,
                    fingerprint=print_,
                    method=request.method or "",
                    path=request.get_full_path()[:2000],
                    created_at=now,
                )
        except IntegrityError:
            # A concurrent request with this key committed first (we waited for it): read its answer.
            continue
    raise _refusal(
        status.HTTP_409_CONFLICT,
        f"A request with {HEADER} {key!r} is still being handled; send it again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def finish(row: IdempotencyKey, response: HttpResponse, *, stored: bool) -> None:
    """Record the answer when the request stored something; else release the key."""
    if not stored:
        row.delete()
        return
    if hasattr(response, "render"):
        response.render()
    row.status_code = response.status_code
    row.content_type = response.get("Content-Type", "")
    row.body = response.content.decode("utf-8")
    row.save(update_fields=["status_code", "content_type", "body"])
