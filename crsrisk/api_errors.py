"""API errors are always JSON 4xx with a readable body, never a 500 page."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn Django validation errors into 400 JSON, then defer to DRF."""
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return Response({"errors": detail}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
