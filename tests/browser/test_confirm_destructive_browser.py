"""The create form's "Ask before destructive MCP tools" checkbox in a real browser (Debian's Chromium via
Playwright) against a live ``vibexp serve``: checked by its label, the key is made asking first (read back over
REST). Screenshots at 1280 px and 375 px."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from test_key_permissions_browser import call, open_create_form, read_new_key, shot, sign_in

from browser.conftest import DashboardUser
from helpers.servers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_the_checkbox_makes_a_key_that_asks_first(
    page: Page, dashboard_user: DashboardUser, live_server: LiveServer, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    await open_create_form(page, "Asks first")
    box = page.get_by_label("Ask before destructive MCP tools")
    await expect(box).not_to_be_checked()  # the default
    await box.check()
    await shot(page, screenshots, "keys-create-confirm-destructive-1280")
    await page.set_viewport_size({"width": 375, "height": 740})
    await shot(page, screenshots, "keys-create-confirm-destructive-375")
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.get_by_role("button", name="Create").click()
    key = await read_new_key(page)
    me = call(live_server, key, "GET", "/api/v1/api-keys")
    assert me.status_code == 200, me.text
    made = [k for k in me.json()["items"] if k["name"] == "Asks first"]
    assert [k["confirm_destructive"] for k in made] == [True], made
