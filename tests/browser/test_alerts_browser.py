"""The Alerts page in Chromium against a live ``vibexp serve`` (#16): the navigation badge counts open alerts,
Acknowledge moves one to the acknowledged list, and the live server's webhook sender delivers the alert to a real
receiver, which the page's delivery log shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from browser.conftest import DashboardUser
from browser.test_dashboard_browser import shot, sign_in
from helpers.receiver import Receiver, verify
from vibexp.core.access import Actor
from vibexp.core.alerts.models import Alert, AlertKind
from vibexp.core.alerts.webhooks import enqueue_delivery
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys import service as keys
from vibexp.core.tenants.models import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECRET = "browser-test-webhook-secret"


async def raise_alerts(browser_db: str, user: DashboardUser, *, webhook: str) -> list[str]:
    """Two open alerts on a new key of the user's tenant, the first queued for ``webhook``."""
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.name == user.tenant))).one()
            tenant.alert_webhook_url, tenant.alert_webhook_secret = webhook, SECRET
            key = await keys.create_key(
                session, actor=Actor.system("tests"), tenant_id=tenant.id, name="Deploy bot", source="cli"
            )
            ids = []
            for kind, details in (
                (AlertKind.new_network, {"network": "198.51.100.0/24"}),
                (AlertKind.after_hours, {"local_time": "Sun 03:12"}),
            ):
                alert = Alert(tenant_id=tenant.id, key_id=key.record.id, kind=kind.value, details=details)
                session.add(alert)
                await session.flush()
                if kind is AlertKind.new_network:
                    await enqueue_delivery(session, tenant=tenant, alert=alert)
                ids.append(alert.id)
            return ids
    finally:
        await engine.dispose()


async def test_badge_delivery_log_and_acknowledge(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    with Receiver() as receiver:
        network, after_hours = await raise_alerts(browser_db, dashboard_user, webhook=receiver.url())
        await sign_in(page, dashboard_user)
        badge = page.get_by_test_id("open-alerts")
        await expect(badge).to_have_text(re.compile(r"^2\s*open$"))

        await page.get_by_role("link", name=re.compile("^Alerts")).click()
        await expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
        row = page.locator(f"#alert-{network}")
        await expect(page.locator("[data-kind=new_network] h3")).to_contain_text("Used from a new network")
        await expect(row.get_by_test_id("summary")).to_have_text("Used from network 198.51.100.0/24, new for this key")
        await expect(row).to_contain_text("Deploy bot")
        # The live server's sender POSTs it within a poll or two; the log on the page says so after a reload.
        for _ in range(20):
            if receiver.received:
                break
            await page.wait_for_timeout(250)
        await page.reload()
        await expect(page.locator(f"#alert-{network} [data-testid=delivery-state]")).to_have_text("Delivered")
        log = page.locator(f"#alert-{network} [data-testid=delivery] p")
        await expect(log).to_be_hidden()  # the log is folded
        await page.locator(f"#alert-{network} [data-testid=delivery] summary").click()
        await expect(log).to_contain_text("delivered · 1 attempt · last HTTP")
        await expect(page.locator(f"#alert-{after_hours} [data-testid=delivery-state]")).to_have_text("Not sent")
        await shot(page, screenshots, "alerts-open")

    [got] = receiver.received
    assert verify(SECRET, got)  # t=<unix>,v1=<HMAC of "t.delivery id.body">
    assert json.loads(got.body)["id"] == network

    await page.locator(f"#alert-{after_hours}").get_by_role("button", name="Acknowledge").click()
    await expect(page.get_by_role("status")).to_have_text("Alert acknowledged.")
    await expect(page.get_by_test_id("open-alerts")).to_have_text(re.compile(r"^1\s*open$"))
    acknowledged = page.get_by_test_id("acknowledged-alerts-table").locator(f"#alert-{after_hours}")
    await expect(acknowledged).to_contain_text(dashboard_user.email)
    await expect(page.get_by_test_id("open-alerts-table").locator(f"#alert-{after_hours}")).to_have_count(0)

    await page.locator(f"#alert-{network}").get_by_role("button", name="Acknowledge").click()
    await expect(page.get_by_test_id("open-alerts")).to_have_count(0)  # no open alert: no badge
    await expect(page.get_by_test_id("no-open-alerts")).to_be_visible()
    await shot(page, screenshots, "alerts-acknowledged")

    # On a phone the alert tables stack: nothing scrolls sideways.
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/alerts")
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"/alerts scrolls sideways by {overflow}px"
    await shot(page, screenshots, "alerts-narrow")


async def test_acknowledge_all_wide_and_narrow(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    with Receiver() as receiver:
        await raise_alerts(browser_db, dashboard_user, webhook=receiver.url())
        await sign_in(page, dashboard_user)
        await page.goto("/alerts")
        await shot(page, screenshots, "alerts-grouped-1280")
        await page.set_viewport_size({"width": 375, "height": 740})
        await page.reload()
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"/alerts scrolls sideways by {overflow}px"
        await shot(page, screenshots, "alerts-grouped-375")
        await page.get_by_test_id("acknowledge-all").click()
        await expect(page.get_by_role("status")).to_have_text("2 alerts acknowledged.")
        await expect(page.get_by_test_id("no-open-alerts")).to_be_visible()
        await shot(page, screenshots, "alerts-all-acknowledged-375")
