"""Where keys are used, in Chromium (issue #31 item 8): the key's page and the Usage page show the countries table at
1280 px and 375 px (screenshots in the artifacts' screenshots/ folder: countries-*.png)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.async_api import Page, expect
from sqlalchemy import select

from browser.conftest import DashboardUser
from helpers.factories import TEST_ACTOR
from vibexp.core.clock import utcnow
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.geo import country_of
from vibexp.core.keys import service as keys
from vibexp.core.tenants.models import Tenant
from vibexp.core.usage.models import KeyAction

#: Public addresses of several registries; their countries come from the shipped data.
ADDRESSES = {"193.0.6.139": 40, "8.8.8.8": 7, "1.0.16.1": 2, "10.0.0.8": 5}


async def _key_used_from_several_countries(browser_db: str, user: DashboardUser) -> str:
    """A key of the user's tenant with action-log rows as the usage flush writes them (country looked up)."""
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.name == user.tenant))).one()
            new = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="laptop — Claude Code")
            now = utcnow()
            session.add_all(
                KeyAction(
                    key_id=new.record.id,
                    tenant_id=tenant.id,
                    at=now - timedelta(minutes=n),
                    method="POST",
                    route="/mcp/v1/common",
                    action="search_memories",
                    status=200,
                    tool_type="claude_code",
                    client_ip=address,
                    country=country_of(address),
                )
                for address, count in ADDRESSES.items()
                for n in range(count)
            )
            return new.record.id
    finally:
        await engine.dispose()


async def test_countries_on_the_key_page_and_the_usage_page_at_1280_and_375(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    key_id = await _key_used_from_several_countries(browser_db, dashboard_user)
    await page.goto("/login")
    await page.get_by_label("E-mail").fill(dashboard_user.email)
    await page.get_by_label("Password").fill(dashboard_user.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expected = [country_of(a) for a in ADDRESSES if country_of(a)]
    for width in (1280, 375):
        await page.set_viewport_size({"width": width, "height": 900})
        for path, name in ((f"/settings/api-keys/{key_id}", "key"), ("/usage", "usage")):
            await page.goto(path)
            table = page.get_by_test_id("countries")
            await expect(table).to_be_visible()
            await expect(table.locator("tbody tr")).to_have_count(len(expected))
            await expect(table.locator("tbody tr").first).to_contain_text("40")
            await table.scroll_into_view_if_needed()
            await page.screenshot(path=str(screenshots / f"countries-{name}-{width}.png"), full_page=True)
            card = page.locator("section", has=table)
            await card.screenshot(path=str(screenshots / f"countries-{name}-{width}-card.png"))
