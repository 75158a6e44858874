"""Settings → Audit log in Chromium against a live ``vibexp serve`` (#16): a key made and revoked in the dashboard
shows up with the signed-in user as actor, and the key and action filters narrow the list."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from browser.conftest import DashboardUser
from browser.test_dashboard_browser import create_key, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_audit_log_shows_dashboard_actions_and_filters_them(
    page: Page, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    await sign_in(page, dashboard_user)
    await create_key(page, "Audited in Chromium")
    await create_key(page, "Kept key")
    await page.goto("/settings/api-keys")
    await page.get_by_role("link", name="Revoke Audited in Chromium").click()
    await page.get_by_role("button", name="Revoke key").click()

    await page.get_by_role("link", name="Audit log").click()
    await expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    rows = page.get_by_test_id("audit-events").locator("tbody tr")
    await expect(rows.first).to_contain_text("key.revoked")
    await expect(rows.first).to_contain_text("Audited in Chromium")
    await expect(rows.first).to_contain_text(dashboard_user.email)
    await expect(page.get_by_test_id("audit-events")).to_contain_text("user.signed_in")

    await page.get_by_label("Action").select_option("key.created")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(2)
    await expect(page.get_by_test_id("audit-events")).not_to_contain_text("key.revoked")

    await page.get_by_label("Action").select_option("")
    kept = await page.get_by_label("Key").locator("option", has_text="Kept key").get_attribute("value")
    assert kept
    await page.get_by_label("Key").select_option(kept)
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("key.created")
    await shot(page, screenshots, "audit-log-filtered")
