"""The usage page in Chromium (issue 31 item 5): the breakdown by outcome, filtering the action log with the form,
and nothing scrolling sideways on a phone. Screenshots at 1280 px and 375 px."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from browser.conftest import DashboardUser, shots
from browser.test_connected_apps_browser import add_connected_apps
from browser.test_dashboard_browser import shot, sign_in
from helpers.factories import TEST_ACTOR
from vibexp.core.alerts.models import Alert, AlertKind
from vibexp.core.clock import utcnow
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys import service as keys
from vibexp.core.tenants.models import Tenant
from vibexp.core.usage.models import KeyAction

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def seed_usage(browser_db: str, user: DashboardUser) -> None:
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.name == user.tenant))).one()
            key = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="CI runner", source="cli")
            now = utcnow()
            for i, (status, tool, action) in enumerate(
                [
                    (200, "python_requests", "GET /api/v1/prompts"),
                    (200, "claude_code", "get_prompt"),
                    (403, "python_requests", "POST /api/v1/memories"),
                    (429, "python_requests", "GET /api/v1/prompts"),
                    (404, "curl", "GET /api/v1/prompts/{item_id}"),
                    (500, "node", "search_artifacts"),
                ]
            ):
                session.add(
                    KeyAction(
                        key_id=key.record.id,
                        tenant_id=tenant.id,
                        at=now,
                        method="GET",
                        route="/api/v1/prompts",
                        action=action,
                        status=status,
                        tool_type=tool,
                        client_ip=f"192.0.2.{i + 1}",
                    )
                )
            session.add(Alert(tenant_id=tenant.id, key_id=key.record.id, kind=AlertKind.failed_auth.value, count=4))
    finally:
        await engine.dispose()


async def add_grant_usage(browser_db: str, *, tenant_id: str, grant_id: str) -> None:
    """A connected app's (OAuth grant's) action, as the flush writes it, and an open alert on the grant."""
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine), write=True) as session:
            session.add(
                KeyAction(
                    grant_id=grant_id,
                    tenant_id=tenant_id,
                    at=utcnow(),
                    method="POST",
                    route="/mcp/v1/connect",
                    action="search_memories",
                    status=200,
                    tool_type="claude_code",
                    client_ip="198.51.100.23",
                    country=None,
                )
            )
            details = {"network": "198.51.100.0/24", "client_ip": "198.51.100.23"}
            kind = AlertKind.new_network.value
            session.add(Alert(tenant_id=tenant_id, grant_id=grant_id, kind=kind, details=details))
    finally:
        await engine.dispose()


async def test_a_connected_apps_actions_and_alerts_name_it(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    apps = await add_connected_apps(browser_db, dashboard_user)
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.name == dashboard_user.tenant))).one()
    finally:
        await engine.dispose()
    await add_grant_usage(browser_db, tenant_id=tenant.id, grant_id=apps.claude)
    await sign_in(page, dashboard_user)
    await page.goto("/usage")
    row = page.get_by_test_id("actions").locator("tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(f"Claude Code (OAuth) · {dashboard_user.email}")
    await expect(row).to_contain_text("search_memories")
    # The filter offers the connected apps beside the keys (revoked ones marked), and choosing one keeps it.
    key_filter = page.get_by_label("Key or app")
    apps_group = key_filter.locator('optgroup[label="Connected apps"]')
    await expect(apps_group.locator(f'option[value="{apps.claude}"]')).to_have_text(
        f"Claude Code (OAuth) · {dashboard_user.email}"
    )
    await expect(apps_group.locator(f'option[value="{apps.revoked}"]')).to_contain_text("· revoked")
    await expect(key_filter.locator("optgroup")).to_have_count(1)  # no keys here: no empty "Keys" group
    await key_filter.select_option(value=apps.claude)
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_label("Key or app")).to_have_value(apps.claude)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("search_memories")
    await shots(page, screenshots, "usage-grant")
    await page.goto("/alerts")
    await expect(page.locator('[data-credential="grant"]').first).to_have_text("Claude Code (OAuth)")
    await shots(page, screenshots, "alerts-grant")


async def test_usage_breakdown_and_filters(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    await seed_usage(browser_db, dashboard_user)
    await sign_in(page, dashboard_user)
    await page.goto("/usage")
    outcomes = page.get_by_test_id("outcomes")
    await expect(outcomes.locator("[data-outcome=ok]")).to_have_text("2")
    await expect(outcomes.locator("[data-outcome=failed_auth]")).to_have_text("4")
    await expect(page.get_by_test_id("actions").locator("tbody tr")).to_have_count(6)
    await expect(page.get_by_test_id("actions")).to_contain_text("Python requests")
    await shot(page, screenshots, "usage-1280")

    key_filter = page.get_by_label("Key or app")
    await expect(key_filter.locator('optgroup[label="Keys"] option')).to_contain_text(["CI runner ("])
    await expect(key_filter.locator("optgroup")).to_have_count(1)  # no connected apps here: no empty group
    await page.get_by_label("Tool").select_option(label="Python requests")
    await page.get_by_label("Status").select_option(label="Rate limited (429)")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_test_id("actions").locator("tbody tr")).to_have_count(1)
    await expect(page.get_by_test_id("actions")).to_contain_text("429")
    await expect(page.get_by_label("Status")).to_have_value("rate_limited")

    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/usage")
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"/usage scrolls sideways by {overflow}px"
    await shot(page, screenshots, "usage-375")
