"""Key permissions in a real browser (Debian's Chromium via Playwright) against a live ``vibexp serve``: the create
form's presets, the custom grid, an allowed network and an expiry, the list's Scopes column, and the banner for a
key that expires within seven days. Each key read from the page is then used over REST, where its scopes count.

The live server sees this test's requests from 127.0.0.1, so a key fenced to 127.0.0.0/8 works from here.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from browser.conftest import DashboardUser
from helpers.servers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEY_RE = re.compile(r"^vib_[0-9a-f]{64}$")
WARNING = "API keys are displayed only once during creation. Copy and save the key immediately."


async def shot(page: Page, screenshots: Path, name: str) -> None:
    await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


async def sign_in(page: Page, user: DashboardUser) -> None:
    await page.goto("/login")
    await page.get_by_label("E-mail").fill(user.email)
    await page.get_by_label("Password").fill(user.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def open_create_form(page: Page, name: str, access: str | None = "Full access") -> None:
    """The form opened and named; ``access`` the permissions preset to pick (nothing is preselected)."""
    await page.goto("/settings/api-keys")
    await page.locator("summary", has_text="Create New API Key").click()
    await page.get_by_label("Name").fill(name)
    if access:
        await page.get_by_label(access).check()


async def read_new_key(page: Page) -> str:
    await expect(page.get_by_text(WARNING)).to_be_visible()
    key = await page.get_by_test_id("new-key").input_value()
    assert KEY_RE.match(key), key
    return key


def call(server: LiveServer, key: str, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"})


async def test_read_only_and_custom_keys_from_the_form(
    page: Page, dashboard_user: DashboardUser, live_server: LiveServer, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    await open_create_form(page, "Docs reader", access=None)
    for preset in ("Read-only", "Full access", "Custom — choose below"):
        await expect(page.get_by_label(preset)).not_to_be_checked()  # the person chooses
    await page.get_by_label("Read-only").check()
    await page.get_by_label("Never").check()
    await page.get_by_label("Allowed networks").fill("127.0.0.0/8")
    await shot(page, screenshots, "keyperm-01-read-only-form")
    await page.get_by_role("button", name="Create", exact=True).click()

    reader = await read_new_key(page)
    await expect(page.get_by_test_id("new-key-permissions")).to_contain_text("Read-only")
    await expect(page.get_by_test_id("new-key-permissions")).to_contain_text("127.0.0.0/8")
    await shot(page, screenshots, "keyperm-02-read-only-created")
    assert call(live_server, reader, "GET", "/api/v1/api-keys").status_code == 200
    refused = call(live_server, reader, "POST", "/api/v1/api-keys", {"name": "more"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"

    await page.get_by_role("link", name="I have saved my key").click()
    row = page.locator("tr", has_text="Docs reader")
    await expect(row.get_by_test_id("key-scopes")).to_have_text("Read-only")
    await expect(row.get_by_test_id("key-networks")).to_have_text("from 127.0.0.0/8")
    await expect(row.get_by_test_id("key-expires")).to_have_text("never")
    assert reader not in await page.content()  # shown once, never again

    # Custom: checking a box of the grid picks "Custom" (the page's one small script); only memories:write is stored.
    await page.locator("summary", has_text="Create New API Key").click()
    await page.get_by_label("Name").fill("Notes writer")
    await page.get_by_label("Write memories").check()
    await expect(page.get_by_label("Custom — choose below")).to_be_checked()
    await shot(page, screenshots, "keyperm-03-custom-form")
    await page.get_by_role("button", name="Create", exact=True).click()
    writer = await read_new_key(page)
    await expect(page.get_by_test_id("new-key-permissions")).to_contain_text("memories:write")
    refused = call(live_server, writer, "GET", "/api/v1/api-keys")
    assert refused.status_code == 403 and 'scope="keys:read"' in refused.headers["www-authenticate"]

    await page.goto("/settings/api-keys")
    await expect(page.locator("tr", has_text="Notes writer").get_by_test_id("key-scopes")).to_have_text(
        "memories:write"
    )
    await expect(page.get_by_test_id("expiring-keys")).to_have_count(0)  # neither key expires
    await shot(page, screenshots, "keyperm-04-list")


async def test_a_bad_network_keeps_the_form_and_an_expiring_key_shows_the_banner(
    page: Page, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    await open_create_form(page, "Build agent", access=None)
    await page.get_by_label("Custom — choose below").check()
    await page.get_by_label("Read prompts").check()
    await page.get_by_label("Allowed networks").fill("10.0.0.1/8")
    await page.get_by_label("Expires in (days)").fill("3")
    await page.get_by_role("button", name="Create", exact=True).click()

    # Refused with the reason next to the input, everything typed still there.
    await expect(page.locator("#e-allowed_cidrs")).to_contain_text("did you mean 10.0.0.0/8?")
    await expect(page.get_by_label("Name")).to_have_value("Build agent")
    await expect(page.get_by_label("Custom — choose below")).to_be_checked()
    await expect(page.get_by_label("Read prompts")).to_be_checked()
    await expect(page.get_by_label("Expires in (days)")).to_have_value("3")
    await shot(page, screenshots, "keyperm-05-bad-network")

    await page.get_by_label("Allowed networks").fill("10.0.0.0/8")
    await page.get_by_role("button", name="Create", exact=True).click()
    await read_new_key(page)
    await page.get_by_role("link", name="I have saved my key").click()
    banner = page.get_by_test_id("expiring-keys")
    await expect(banner).to_contain_text("1 key expires within 7 days")
    await expect(banner).to_contain_text("Build agent (in 3 days)")
    await shot(page, screenshots, "keyperm-06-expiry-banner")

    await page.goto("/")
    await expect(page.get_by_test_id("expiring-keys")).to_contain_text("Build agent (in 3 days)")
    await page.get_by_test_id("expiring-keys").get_by_role("link", name="API Keys").click()
    await expect(page.get_by_role("heading", name="API Keys", exact=True)).to_be_visible()
