"""Settings → API Keys in Debian's Chromium (#31): the filter and search as a person clicks them, the create form's
presets and its list of errors, the "key created" page's copy buttons (what lands on the clipboard), and a signed-in
404 page — each shot at 1280 px and 375 px (``test-output/screenshots/keys-*.png``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from browser.conftest import DashboardUser, shots
from browser.test_key_permissions_browser import open_create_form, read_new_key, sign_in
from helpers.servers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
async def clipboard_page(browser: Browser, live_server: LiveServer) -> AsyncIterator[Page]:
    """A page allowed to write and read the clipboard (127.0.0.1 is a secure context, as HTTPS would be)."""
    context: BrowserContext = await browser.new_context(
        base_url=live_server.url,
        viewport={"width": 1280, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def test_copy_buttons_put_the_key_and_each_set_up_on_the_clipboard(
    clipboard_page: Page, dashboard_user: DashboardUser, live_server: LiveServer, screenshots: Path
) -> None:
    page = clipboard_page
    await sign_in(page, dashboard_user)
    await open_create_form(page, "Work Laptop - Claude Code", access="Read-only")
    await page.get_by_label("30 days").check()
    await page.get_by_role("button", name="Create", exact=True).click()
    key = await read_new_key(page)
    await shots(page, screenshots, "keys-created")

    await page.get_by_role("button", name="Copy", exact=True).click()
    await expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("navigator.clipboard.readText()") == key

    mcp = f"{live_server.url}/mcp/v1/common"
    for tool, check in (
        ("Claude Code", lambda text: text.endswith(f'--header "Authorization: Bearer {key}"') and mcp in text),
        ("VS Code", lambda text: json.loads(text)["inputs"][0]["password"] is True and key not in text),
        ("Cursor (1 of 2)", lambda text: text == f"export VIBEXP_KEY={key}"),
        ("curl", lambda text: text.startswith(f'curl -H "Authorization: Bearer {key}"')),
        ("Python", lambda text: f"Bearer {key}" in text and text.startswith("import requests")),
        ("Node", lambda text: f"Bearer {key}" in text and "await fetch(" in text),
    ):
        summary = page.locator("summary", has_text=tool)
        details = page.locator("details.set-up", has=summary)
        if await details.get_attribute("open") is None:
            await summary.click()
        button = details.get_by_role("button", name=f"Copy the {tool} set-up")
        await button.click()
        await expect(button).to_have_attribute("data-copied", "true")
        copied = await page.evaluate("navigator.clipboard.readText()")
        assert copied == await details.locator("pre").inner_text()
        assert check(copied), (tool, copied)


async def test_without_javascript_the_set_ups_are_there_to_select(
    browser: Browser, live_server: LiveServer, dashboard_user: DashboardUser
) -> None:
    context = await browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = await context.new_page()
        await sign_in(page, dashboard_user)
        await page.goto("/settings/api-keys")
        await page.locator("summary", has_text="Create New API Key").click()  # a <details>: no script needed
        await page.get_by_label("Name").fill("No script")
        await page.get_by_label("Read-only").check()
        await page.get_by_role("button", name="Create", exact=True).click()
        key = await read_new_key(page)
        await expect(page.get_by_role("button", name="Copy", exact=True)).to_be_hidden()  # no button that does nothing
        await expect(page.locator("#snippet-claude-code")).to_contain_text(f"Bearer {key}")
    finally:
        await context.close()


async def test_filter_search_presets_and_errors_as_clicked(
    page: Page, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    # Every error at once, each linking to its input.
    await page.goto("/settings/api-keys")
    await page.locator("summary", has_text="Create New API Key").click()
    await shots(page, screenshots, "keys-create-form")
    await page.get_by_label("Name").fill("Build agent")
    await page.get_by_label("Allowed networks").fill("nowhere")
    await page.get_by_label("Expires in (days)").fill("0")
    await expect(page.locator("#expiry-custom")).to_be_checked()  # typing days picks Custom
    await page.get_by_role("button", name="Create", exact=True).click()
    summary = page.get_by_test_id("error-summary")
    await expect(summary.locator("li")).to_have_count(3)
    await expect(summary).to_contain_text("Choose what the key may do")
    await shots(page, screenshots, "keys-create-errors")
    await page.get_by_label("90 days").check()
    await expect(page.get_by_label("Expires in (days)")).to_have_value("")  # a preset clears the typed days
    await page.get_by_label("Allowed networks").fill("")
    await page.get_by_label("Full access").check()
    await page.get_by_role("button", name="Create", exact=True).click()
    await read_new_key(page)
    await page.get_by_role("link", name="I have saved my key").click()

    for name in ("Work Laptop - Cursor", "CI runner"):
        await open_create_form(page, name)
        await page.get_by_role("button", name="Create", exact=True).click()
        await read_new_key(page)
    await page.goto("/settings/api-keys")
    await page.get_by_role("link", name="Revoke CI runner").click()
    await page.get_by_role("button", name="Revoke key").click()

    await page.get_by_test_id("filter-revoked").click()
    rows = page.locator("table.keys tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("CI runner")
    await page.get_by_test_id("filter-all").click()
    await page.get_by_label("Search keys").fill("laptop")
    await page.get_by_role("button", name="Search").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Work Laptop - Cursor")
    await page.get_by_role("link", name="Clear").click()
    await expect(rows).to_have_count(3)
    await shots(page, screenshots, "keys-list")

    await page.goto("/settings/account")
    await shots(page, screenshots, "keys-account")
    await page.goto("/settings/no-such-page")
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    await shots(page, screenshots, "keys-not-found")
