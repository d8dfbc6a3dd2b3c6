"""Admin pages on a portrait tablet (issue 8 item 8): care-team checkboxes under their label,
the password rules as enforced, and care teams created and renamed on their own page."""

from __future__ import annotations

import pytest

from crsrisk.accounts.models import SecurityEvent
from patients.models import CareTeam
from tests.browser.conftest import PASSWORD, SCREENSHOTS
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PORTRAIT_TABLET = {"width": 820, "height": 1180}


def _login_admin(page, base: str) -> None:
    make_user("root.admin", "admin")
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "root.admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_selector("nav >> text=Care teams")


def test_admin_creates_and_renames_a_team_then_picks_it_under_its_label(new_page, live_server):
    CareTeam.objects.create(name="Day hospital")
    page = new_page()
    page.set_viewport_size(PORTRAIT_TABLET)
    base = live_server.url
    _login_admin(page, base)

    page.click("nav >> text=Care teams")
    page.wait_for_url(f"{base}/accounts/teams/", wait_until="load")
    page.locator("#id_name").press_sequentially("Paediatric CAR-T")
    page.click("button:has-text('Create care team')")
    page.wait_for_url(f"{base}/accounts/teams/", wait_until="load")
    assert page.locator("text=Care team Paediatric CAR-T created.").is_visible()
    # The same name in other letters is another slip: refused, the input kept.
    page.locator("#id_name").press_sequentially("paediatric car-t")
    page.click("button:has-text('Create care team')")
    assert "A care team called 'Paediatric CAR-T' already exists." in page.locator(".errors").inner_text()
    assert page.input_value("#id_name") == "paediatric car-t"
    assert CareTeam.objects.count() == 2

    page.click("a:has-text('Rename Paediatric CAR-T')")
    page.fill("#id_name", "")
    page.locator("#id_name").press_sequentially("Paediatric CAR-T unit")
    page.click("button:has-text('Rename')")
    page.wait_for_url(f"{base}/accounts/teams/", wait_until="load")
    assert page.locator("text=Care team Paediatric CAR-T renamed to Paediatric CAR-T unit.").is_visible()
    assert set(CareTeam.objects.values_list("name", flat=True)) == {"Day hospital", "Paediatric CAR-T unit"}
    assert SecurityEvent.objects.filter(kind__in=["care_team_created", "care_team_renamed"]).count() == 2

    page.click("nav >> text=New account")
    page.wait_for_url(f"{base}/accounts/users/new/", wait_until="load")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    legend = page.locator("fieldset.field-choices legend").bounding_box()
    assert page.locator("fieldset.field-choices legend").inner_text() == "Care teams"
    for name in ("Day hospital", "Paediatric CAR-T unit"):
        box = page.get_by_label(name).bounding_box()
        text = page.locator("label.choice", has_text=name).locator("span").bounding_box()
        assert box["y"] > legend["y"] + legend["height"] - 1, name  # under the label
        assert box["x"] + box["width"] <= text["x"], name  # the box left of its name ...
        middle = text["y"] + text["height"] / 2
        assert box["y"] <= middle <= box["y"] + box["height"], name  # ... on the same line
    single = page.locator("#id_all_care_teams").bounding_box()
    single_label = page.locator("label[for=id_all_care_teams]").bounding_box()
    assert single["x"] + single["width"] <= single_label["x"]
    assert single["y"] <= single_label["y"] + single_label["height"] / 2 <= single["y"] + single["height"]
    help_text = page.locator("#id_password_helptext").inner_text()
    assert "Not too similar to the username" in help_text and "At least 12 characters." in help_text
    page.screenshot(path=str(SCREENSHOTS / "new-account-portrait.png"), full_page=True)

    page.fill("#id_username", "nurse.zhou")
    page.get_by_label("Paediatric CAR-T unit").check()
    page.fill("#id_password", "nurse.zhou2")
    page.fill("#id_password_confirm", "nurse.zhou2")
    page.click("button:has-text('Create account')")
    errors = page.locator(".errors").inner_text()
    assert "too similar to the username" in errors
    assert page.get_by_label("Paediatric CAR-T unit").is_checked()
