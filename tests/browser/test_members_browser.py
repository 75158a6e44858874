"""Settings → Members and /join in a real browser: invite someone (the link shown once), then open the link in a
fresh browser: the page's script copies the token from the fragment into the form (and drops it from the address
bar); the new user joins and lands signed in. Screenshots at 1280 and 375 px."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from browser.conftest import DashboardUser, shots
from browser.test_dashboard_browser import sign_in
from helpers.servers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_invite_then_join_through_the_link(
    page: Page, browser: Browser, live_server: LiveServer, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    await page.goto("/settings/api-keys")
    await page.get_by_role("navigation", name="Settings").get_by_role("link", name="Members").click()
    await expect(page.get_by_role("heading", name="Members", exact=True)).to_be_visible()
    await expect(page.get_by_test_id("members")).to_contain_text(dashboard_user.email)

    await page.get_by_label("E-mail").fill("ada@example.com")
    await page.get_by_label("Role", exact=True).select_option("admin")
    await page.get_by_role("button", name="Make invitation link").click()
    link = await page.get_by_role("textbox", name="Invitation link").input_value()
    assert "/join#vibinv_" in link
    await expect(page.get_by_test_id("invitations")).to_contain_text("ada@example.com")
    await shots(page, screenshots, "members-invited")

    guest = await browser.new_context(base_url=live_server.url)
    try:
        joiner = await guest.new_page()
        await joiner.goto(link)
        token = link.rpartition("#")[2]
        await expect(joiner.get_by_label("Invitation link or token")).to_have_value(token)
        assert "#" not in joiner.url  # the token left the address bar
        await shots(joiner, screenshots, "members-join")
        await joiner.get_by_label("Password").fill("a-new-password-for-ada")
        await joiner.get_by_role("button", name="Join").click()
        await expect(joiner.get_by_role("heading", name="Overview")).to_be_visible()
        await expect(joiner.locator(".who")).to_have_text("ada@example.com")
    finally:
        await guest.close()

    await page.goto("/settings/members")  # not a reload: that would send the invitation form again
    await expect(page.get_by_test_id("members")).to_contain_text("ada@example.com")
    await expect(page.get_by_text("No pending invitations.")).to_be_visible()
    await shots(page, screenshots, "members-list")
