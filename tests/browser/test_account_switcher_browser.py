"""The account switcher in Chromium (DESIGN "Teams"): a person in two accounts opens the menu in the navigation,
by mouse and by keyboard (Escape closes it), switches, and sees the other account's prompts with the role held
there; a person in one account has no switcher; accepting an invitation switches to the account joined, and a
reload afterwards is harmless. Screenshots of the navigation, menu closed and open, at 1280 and 375 px."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from browser.conftest import DashboardUser, TwoAccountUser, make_dashboard_user, shots
from browser.test_dashboard_browser import create_key, sign_in
from helpers.servers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def add_prompt(page: Page, live_server: LiveServer, name: str) -> None:
    """A prompt in the account the page is signed in to, through a key made on the dashboard."""
    key = await create_key(page, f"key for {name}")
    async with httpx.AsyncClient(
        base_url=f"{live_server.url}/api/v1", headers={"Authorization": f"Bearer {key}"}
    ) as api:
        made = await api.post("/prompts", json={"name": name, "content": "Hello"})
        assert made.status_code == 201, made.text


async def test_switch_accounts_by_mouse_and_keyboard(
    page: Page, two_account_user: TwoAccountUser, live_server: LiveServer, screenshots: Path
) -> None:
    user, second = two_account_user.user, two_account_user.second
    await sign_in(page, user)
    await add_prompt(page, live_server, "alpha-prompt")
    await page.goto("/prompts")
    switcher = page.get_by_test_id("account-switcher")
    summary = switcher.locator("summary")
    await expect(summary).to_contain_text(user.tenant)
    await expect(summary).to_contain_text("owner")
    await expect(page.get_by_role("button", name=second)).to_be_hidden()  # closed
    await shots(page, screenshots, "switcher-closed")

    await summary.click()
    choice = page.get_by_role("button", name=f"{second} viewer")
    await expect(choice).to_be_visible()
    await expect(switcher.locator('[aria-current="true"]')).to_contain_text(user.tenant)
    await shots(page, screenshots, "switcher-open")

    # Keyboard: Escape closes the menu and gives the focus back; Enter opens it; Tab reaches the account; Enter.
    await page.keyboard.press("Escape")
    await expect(choice).to_be_hidden()
    await expect(summary).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(choice).to_be_visible()
    await page.keyboard.press("Tab")
    await expect(choice).to_be_focused()
    await page.keyboard.press("Enter")

    await expect(page).to_have_url(f"{page.url.split('/prompts')[0]}/prompts?notice=switched")
    await expect(page.get_by_test_id("page-notice")).to_have_text(f"You are now working in {second}, as viewer.")
    await expect(summary).to_contain_text(second)
    await expect(summary).to_contain_text("viewer")
    await expect(page.get_by_text("alpha-prompt")).to_have_count(0)
    await shots(page, screenshots, "switcher-switched")

    await summary.click()
    await page.get_by_role("button", name=f"{user.tenant} owner").click()
    await expect(page.get_by_test_id("page-notice")).to_have_text(f"You are now working in {user.tenant}, as owner.")
    await expect(page.get_by_text("alpha-prompt")).to_be_visible()


async def test_one_account_has_no_switcher(page: Page, dashboard_user: DashboardUser) -> None:
    await sign_in(page, dashboard_user)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.get_by_test_id("account-switcher")).to_have_count(0)


async def test_joining_a_second_account_switches_and_a_reload_is_harmless(
    page: Page,
    browser: Browser,
    browser_db: str,
    live_server: LiveServer,
    dashboard_user: DashboardUser,
    screenshots: Path,
) -> None:
    """An owner invites a person who has an account of their own; signed in there, they open the link and join."""
    guest_user = await make_dashboard_user(browser_db)
    await sign_in(page, dashboard_user)
    await page.goto("/settings/members")
    await page.get_by_label("E-mail").fill(guest_user.email)
    await page.get_by_label("Role", exact=True).select_option("member")
    await page.get_by_role("button", name="Make invitation link").click()
    link = await page.get_by_role("textbox", name="Invitation link").input_value()

    guest = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    try:
        joiner = await guest.new_page()
        await sign_in(joiner, guest_user)
        await expect(joiner.get_by_test_id("account-switcher")).to_have_count(0)  # one account so far
        await joiner.goto(link)
        await joiner.get_by_label("Password").fill(guest_user.password)
        await joiner.get_by_role("button", name="Join").click()
        notice = joiner.get_by_test_id("page-notice")
        await expect(notice).to_have_text(f"You joined {dashboard_user.tenant}, as member.")
        summary = joiner.get_by_test_id("account-switcher").locator("summary")
        await expect(summary).to_contain_text(dashboard_user.tenant)
        await expect(summary).to_contain_text("member")
        await joiner.reload()  # the answer was a redirect: a reload is a plain GET of the overview
        await expect(notice).to_be_visible()
        await expect(joiner.get_by_role("alert")).to_have_count(0)
        await joiner.go_back()  # the join page again, with no error on it
        await expect(joiner.get_by_role("heading", name="Join an account")).to_be_visible()
        await expect(joiner.get_by_role("alert")).to_have_count(0)
        await joiner.goto("/")
        await summary.click()
        await expect(joiner.get_by_role("button", name=f"{guest_user.tenant} owner")).to_be_visible()
        await shots(joiner, screenshots, "switcher-joined")
    finally:
        await guest.close()
