"""API errors are always JSON 4xx with a readable body, never a 500 page (SPEC 9).

Every refusal has the same shape::

    {"detail": "what went wrong, in one sentence",
     "errors": {"<where>": ["what is wrong and what is accepted", ...]}}

``<where>`` is a field name (``"unit"``), a position in a list body
(``"[2].unit"``) or a path in a FHIR bundle (``"entry[3].resource.valueQuantity.code"``).
A request that needs confirmation answers 422 with ``warnings`` in the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from rest_framework import status
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from crsrisk.writes import ConflictError, NeedsConfirmation

logger = logging.getLogger(__name__)

NON_FIELD = "non_field_errors"
REFUSED = "The request was refused and nothing was stored; see errors."
CONFIRM = (
    "Some values are unusual (outside the usual range, or 10-fold from the previous value). "
    'Nothing was stored: check them, then send the request again with "confirm": true.'
)


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten nested DRF or Django error details into ``{"where": [messages]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # DRF reports the bad items of a list body by index
                where = f"{prefix}[{key}]"
            else:
                name = NON_FIELD if key in ("__all__", NON_FIELD) else str(key)
                where = f"{prefix}.{name}" if prefix and name != NON_FIELD else (prefix or name)
            for k, v in flatten_errors(value, where).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list) and detail and all(isinstance(d, dict) for d in detail):
        # A list body: one dict of errors per item, empty for the good ones.
        for i, item in enumerate(detail):
            for k, v in flatten_errors(item, f"{prefix}[{i}]").items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        out.setdefault(prefix or NON_FIELD, []).extend(str(d) for d in detail)
    else:
        out.setdefault(prefix or NON_FIELD, []).append(str(detail))
    return out


def _django_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return flatten_errors(exc.message_dict)
    return {NON_FIELD: list(exc.messages)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map service and validation errors to JSON 4xx, then defer to DRF."""
    if isinstance(exc, NeedsConfirmation):
        return Response(
            {"detail": CONFIRM, "warnings": flatten_errors(exc.warnings)},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    if isinstance(exc, ConflictError):
        messages = list(exc.messages)
        return Response(
            {"detail": " ".join(messages), "errors": {"version": messages}},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        return Response(
            {"detail": REFUSED, "errors": _django_errors(exc)}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, DRFValidationError):
        return Response(
            {"detail": REFUSED, "errors": flatten_errors(exc.detail)}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, RequestDataTooBig):
        # Django's 400 page would answer in HTML; the API says what the limit is, in JSON.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {
                "detail": f"The request body is larger than the limit of {limit} bytes; nothing was "
                "stored. Send fewer items per request (a large FHIR feed: manage.py import_fhir)."
            },
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, IntegrityError):
        # A concurrent write won a race the services could not see coming.
        logger.warning("API write refused by a database constraint: %s", exc)
        return Response(
            {"detail": "The record changed while this request was handled; nothing was stored. Try again."},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)
