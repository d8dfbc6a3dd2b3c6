"""Playwright on Debian's Chromium against pytest-django's live server.

Missing Chromium or Playwright fails under CI=true and skips with a notice elsewhere
(``tests.conftest.ci_requires``). Every page fails the test on an off-origin request
or a console error.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ci_requires

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# `make screenshots` refreshes the README's pictures; an ordinary run leaves the tree clean.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("CRS_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "crsrisk-screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
TABLET_VIEWPORT = {"width": 1280, "height": 800}
PASSWORD = "correct-horse-battery-9"  # tests.conftest.make_user


@pytest.fixture(scope="package", autouse=True)
def _allow_orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API runs an event loop in this thread; the tests' own ORM calls stay
    synchronous and safe. Set for the browser tests only, never for the rest of the run
    (a leaked value would fail the deployment check, async.E001)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


# Package scope: the browser (and Playwright's event loop) closes after the browser tests.
@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        ci_requires(f"Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        ci_requires("the playwright Python package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Guard:
    """Records off-origin requests and console errors of one page."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.off_origin: list[str] = []
        self.console_errors: list[str] = []

    def route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.origin) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.off_origin.append(url)
            route.abort()

    def console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def page_error(self, error: Any) -> None:
        self.console_errors.append(str(error))

    def check(self) -> None:
        assert not self.off_origin, f"off-origin requests: {self.off_origin}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


@pytest.fixture
def new_page(chromium: Any, live_server: Any) -> Iterator[Any]:
    """A factory of guarded pages (one browser context each, like separate people)."""
    contexts: list[tuple[Any, Guard]] = []

    def make() -> Any:
        context = chromium.new_context(viewport=TABLET_VIEWPORT, locale="en-GB")
        guard = Guard(live_server.url)
        context.route("**/*", guard.route)
        page = context.new_page()
        page.on("console", guard.console)
        page.on("pageerror", guard.page_error)
        page.set_default_timeout(30_000)
        page.guard = guard
        contexts.append((context, guard))
        return page

    yield make
    for context, _guard in contexts:
        context.close()
    for _context, guard in contexts:
        guard.check()


def login(page: Any, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_url(f"{base_url}/patients/", wait_until="load")
