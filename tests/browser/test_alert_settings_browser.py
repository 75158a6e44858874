"""Settings → Alerts settings in a real browser: reached from the Settings navigation, every error listed at once
(each linked to its field), then saved; the secret field stays empty and says a secret is set. Screenshots at 1280
and 375 px."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from browser.conftest import DashboardUser, shots
from browser.test_dashboard_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_errors_listed_then_saved(page: Page, dashboard_user: DashboardUser, screenshots: Path) -> None:
    await sign_in(page, dashboard_user)
    await page.goto("/settings/api-keys")
    await page.get_by_role("navigation", name="Settings").get_by_role("link", name="Alerts settings").click()
    await expect(page.get_by_role("heading", name="Alerts settings", exact=True)).to_be_visible()
    await shots(page, screenshots, "alert-settings-empty")

    await page.get_by_label("Webhook URL").fill("ftp://alerts.example.com/hook")
    await page.locator("#f-working_hours").fill("weekdays")
    await page.get_by_role("button", name="Save alerts settings").click()
    summary = page.get_by_test_id("error-summary")
    await expect(summary).to_contain_text("2 things to fix")
    await expect(page.get_by_label("Webhook URL")).to_have_value("ftp://alerts.example.com/hook")
    await shots(page, screenshots, "alert-settings-errors")
    await summary.get_by_role("link", name="working hours", exact=False).click()
    await expect(page.locator("#f-working_hours")).to_be_focused()

    await page.get_by_label("Webhook URL").fill("http://127.0.0.1:9/alerts")
    await page.get_by_label("Signing secret").fill("a-signing-secret-of-32-characters")
    await page.locator("#f-working_hours").fill("Mon-Fri 08:00-19:00 Europe/Berlin")
    await page.get_by_label("Key leaked").check()
    await page.get_by_role("button", name="Save alerts settings").click()
    await expect(page.get_by_test_id("saved")).to_be_visible()
    await expect(page.get_by_label("Signing secret")).to_have_value("")
    await expect(page.get_by_test_id("secret-state")).to_contain_text("A secret is set")
    await expect(page.get_by_label("Key leaked")).to_be_checked()
    await shots(page, screenshots, "alert-settings-saved")
