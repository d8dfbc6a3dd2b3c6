"""Security headers, CSP without inline scripts, the unauthenticated health check (SPEC 7, 8.1)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse


def directives(header: str) -> dict[str, list[str]]:
    parts = [p.strip().split() for p in header.split(";") if p.strip()]
    return {p[0]: p[1:] for p in parts}


def test_csp_has_no_inline_script(client: Client, db: None) -> None:
    response = client.get(reverse("accounts:login"))
    csp = directives(response["Content-Security-Policy"])
    assert csp["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == ["'self'"]
    # Plotly injects <style> elements, so style-src allows inline styles (docs/security.md).
    assert csp["style-src"] == ["'self'", "'unsafe-inline'"]


def test_security_headers_on_every_page(client: Client, db: None) -> None:
    response = client.get(reverse("accounts:login"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_login_page_has_no_inline_script(client: Client, db: None) -> None:
    html = client.get(reverse("accounts:login")).content.decode()
    assert "<script>" not in html and "onclick=" not in html


def test_admin_pages_have_no_inline_script(client: Client, site_admin: User) -> None:
    client.force_login(site_admin)
    for name in ("accounts:user-list", "accounts:user-create", "accounts:security-audit"):
        html = client.get(reverse(name)).content.decode()
        assert "<script>" not in html and " on" + "click=" not in html


def test_health_check_needs_no_login(client: Client, db: None) -> None:
    response = client.get(reverse("health"))
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_session_and_csrf_cookies_are_httponly_and_samesite(client: Client, db: None) -> None:
    from django.conf import settings

    assert settings.SESSION_COOKIE_HTTPONLY and settings.SESSION_COOKIE_SAMESITE == "Lax"
