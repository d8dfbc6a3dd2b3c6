"""Machinery of the access matrix: walk every URL pattern, build a URL, classify the answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver

# Outcomes. A login redirect is told apart from any other redirect.
LOGIN = "login"  # 302 to accounts:login (web) or to the admin's login (Django admin)
ALLOW = "allow"  # the request was processed: 200, 201, 204, 400 (validation) or a redirect
# The last column is an account an admin created as an "all care teams" hematologist, whose
# clinical access no hematologist has approved yet (issue 9): it must reach nothing clinical.
ROLES = ("anonymous", "team_clinician", "other_clinician", "hematologist", "admin", "unapproved")


@dataclass(frozen=True)
class Route:
    key: str  # "namespace:name", or "namespace:<route>" for an unnamed pattern
    route: str  # the full pattern text, prefixes joined
    params: tuple[str, ...]


def _params(pattern: Any) -> list[str]:
    regex = pattern.pattern.regex
    return list(regex.groupindex)


def walk(patterns: list[Any] | None = None, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    """Every URL pattern of the project, with its qualified name."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = ":".join(filter(None, [namespace, p.namespace])) if p.namespace else namespace
            yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            route = prefix + str(p.pattern)
            key = f"{namespace}:{p.name}" if namespace and p.name else (p.name or f"{namespace}:<{route}>")
            yield Route(key=key, route=route, params=tuple(_params(p)))


_CONVERTER = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")


def build_path(route: str, values: dict[str, Any]) -> str:
    """Substitute values into a route (path() converters and re_path() named groups)."""
    text = _CONVERTER.sub(lambda m: str(values[m.group("name")]), route)
    text = _REGEX_GROUP.sub(lambda m: str(values[m.group("name")]), text)
    return "/" + text.replace("^", "").replace("$", "")


def classify(response: HttpResponse) -> str | int:
    """The outcome of one request, in the vocabulary of the expectation table."""
    status = response.status_code
    if status in (301, 302, 303):
        location = response["Location"]
        if location.startswith("/accounts/login/") or location.startswith("/admin/login/"):
            return LOGIN
        return ALLOW
    if status in (200, 201, 204, 400):
        return ALLOW
    return status
