"""Rotating a key that expires, then revoking and deleting the old key, in a real browser with JavaScript off (every
step is a plain form: a link to a confirmation page, a POST), against a live ``vibexp serve`` on SQLite and on
PostgreSQL (issues 25 and 26).

The rotate form shows the expiry the new key gets (the old key's); the result page states it; the banners list the
old key as rotating to the new one, not as expiring; the revoked key's Delete asks first and takes it off the list.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from browser.conftest import DashboardUser
from browser.test_key_permissions_browser import open_create_form, read_new_key, shot, sign_in
from helpers.servers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Seconds the live server may take to start (imports are slow on a loaded two-core machine).
START_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def browser_db(database_url: str) -> str:
    """This module's live server runs on the suite's databases: SQLite and PostgreSQL."""
    return database_url


@pytest.fixture(scope="module")
def live_server(browser_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # A longer start than the browser suite's: this module starts one server per database on a loaded machine.
    server = LiveServer(browser_db).start(log_dir=tmp_path_factory.mktemp("browser-logs"), timeout=START_TIMEOUT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def context(browser: Browser, live_server: LiveServer) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    try:
        yield ctx
    finally:
        await ctx.close()


def _status(server: LiveServer, key: str) -> int:
    return httpx.get(f"{server.url}/api/v1/prompts", headers={"Authorization": f"Bearer {key}"}).status_code


async def test_rotate_keeps_the_expiry_then_delete_the_old_key_without_javascript(
    page: Page, dashboard_user: DashboardUser, live_server: LiveServer, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    await open_create_form(page, "Build agent")
    await page.get_by_label("Expires in (days)").fill("3")
    await page.get_by_role("button", name="Create", exact=True).click()
    old_key = await read_new_key(page)
    old_expiry = await page.get_by_test_id("new-key-permissions").locator("time").get_attribute("datetime")
    assert old_expiry

    await page.get_by_role("link", name="Manage this key").click()
    await expect(page.get_by_test_id("rotation-expiry")).to_contain_text("like the old key, the new key expires")
    assert await page.get_by_test_id("rotation-expiry").locator("time").get_attribute("datetime") == old_expiry
    await page.get_by_label("Keep the old key working for").select_option(label="24 hours")
    await shot(page, screenshots, "keyrotate-01-form")
    await page.get_by_role("button", name="Rotate key").click()
    await expect(page.get_by_role("heading", name="Key rotated")).to_be_visible()
    new_key = await read_new_key(page)
    # The result page states the new key's expiry: the old key's, not "never".
    assert await page.get_by_test_id("new-key-permissions").locator("time").get_attribute("datetime") == old_expiry
    await shot(page, screenshots, "keyrotate-02-result")
    assert _status(live_server, old_key) == 200 and _status(live_server, new_key) == 200

    for path in ("/settings/api-keys", "/"):
        await page.goto(path)
        rotating = page.get_by_test_id("rotating-keys")
        await expect(rotating).to_contain_text(f"{old_key[:12]}…): rotating → {new_key[:12]}…, stops at")
        expiring = page.get_by_test_id("expiring-keys")  # the new key expires in 3 days; the old one is not nagged
        await expect(expiring).to_contain_text("1 key expires within 7 days")
    await shot(page, screenshots, "keyrotate-03-banners")

    # Revoke the old key, then delete it: each a link to a confirmation page and a form.
    await page.goto("/settings/api-keys")
    old_row = page.locator("tr", has_text=old_key[:12])
    await old_row.get_by_role("link", name=re.compile("^Revoke")).click()
    await page.get_by_role("button", name="Revoke key").click()
    await expect(page.get_by_text("Revoked “Build agent”")).to_be_visible()
    assert _status(live_server, old_key) == 401
    await old_row.get_by_role("link", name=re.compile("^Delete")).click()
    await expect(page.get_by_role("heading", name="Delete “Build agent”?")).to_be_visible()
    await shot(page, screenshots, "keydelete-01-confirm")
    await page.get_by_role("button", name="Delete key").click()
    await expect(page.get_by_text("Deleted “Build agent”")).to_be_visible()
    await expect(page.locator("tr", has_text=old_key[:12])).to_have_count(0)
    await expect(page.locator("tr", has_text=new_key[:12])).to_have_count(1)
    await shot(page, screenshots, "keydelete-02-list")
    assert _status(live_server, old_key) == 401 and _status(live_server, new_key) == 200

    # Cancel keeps it: revoke the new key, open Delete, cancel.
    new_row = page.locator("tr", has_text=new_key[:12])
    await new_row.get_by_role("link", name=re.compile("^Revoke")).click()
    await page.get_by_role("button", name="Revoke key").click()
    await new_row.get_by_role("link", name=re.compile("^Delete")).click()
    await page.get_by_role("link", name="Cancel").click()
    await expect(page.locator("tr", has_text=new_key[:12])).to_have_count(1)
