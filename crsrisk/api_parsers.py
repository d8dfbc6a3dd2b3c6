"""The API's JSON parsers: DRF's, refusing JSON nested too deeply with a 400 (issue 9).

Python's decoder recurses once per level, so a body of a few thousand ``[`` raised a
RecursionError, a 500 with a traceback page under DEBUG. Nothing the API accepts is nested
more than a dozen levels (a FHIR Observation inside its bundle entry is about seven), so
``API_MAX_JSON_DEPTH`` (32 by default) is far above any real body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def _too_deep(limit: int) -> ParseError:
    return ParseError(
        f"The JSON body is nested more than {limit} levels deep; nothing was stored. "
        "Send the flat objects and lists that the API documents."
    )


def nesting_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` has objects or lists nested more than ``limit`` levels (no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, Mapping) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class JSONParser(parsers.JSONParser):
    """``application/json``, with a nesting limit."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.API_MAX_JSON_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep(limit) from None
        if isinstance(data, (dict, list)) and nesting_exceeds(data, limit):
            raise _too_deep(limit)
        return data


class FhirJSONParser(JSONParser):
    """``application/fhir+json``: the same JSON, the FHIR media type."""

    media_type = "application/fhir+json"
