"""The Alerts and Usage pages by owner in Chromium against a live ``vibexp serve`` (issue 28, "Teams"): each alert
names its key's owner, and the "Whose" select (Mine / Service / Everyone's) narrows the alerts and the action log;
a member's Usage page is their own keys'; nothing scrolls sideways on a phone. Screenshots at 1280 px and 375 px."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from browser.conftest import DashboardUser
from browser.test_dashboard_browser import shot, sign_in
from helpers.factories import TEST_ACTOR
from vibexp.core.access import Role
from vibexp.core.alerts import service as alerts
from vibexp.core.alerts.models import AlertKind
from vibexp.core.clock import utcnow
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys import service as keys
from vibexp.core.tenants.models import Tenant
from vibexp.core.usage.models import KeyAction
from vibexp.core.users.models import User
from vibexp.core.users.service import create_user

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@dataclass
class Seeded:
    mine: str  # the alert on the user's own key
    service: str  # the alert on a service key


async def seed(browser_db: str, user: DashboardUser) -> Seeded:
    """A personal key of the user ("My laptop") and a service key ("CI runner"), an alert and an action on each."""
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.name == user.tenant))).one()
            person = (await session.scalars(select(User).where(User.email == user.email))).one()
            laptop = await keys.create_key(
                session, actor=TEST_ACTOR, tenant_id=tenant.id, name="My laptop", owner_user_id=person.id
            )
            ci = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="CI runner", source="cli")
            raised = []
            for key, kind, action in (
                (laptop, AlertKind.new_network, "get_prompt"),
                (ci, AlertKind.after_hours, "GET /api/v1/prompts"),
            ):
                alert = await alerts.raise_alert(
                    session, tenant_id=tenant.id, key_id=key.record.id, kind=kind, details={"seen": "browser"}
                )
                assert alert is not None
                raised.append(alert.id)
                session.add(
                    KeyAction(
                        key_id=key.record.id,
                        tenant_id=tenant.id,
                        at=utcnow(),
                        method="GET",
                        route="/api/v1/prompts",
                        action=action,
                        status=200,
                        tool_type="curl",
                        client_ip="192.0.2.7",
                    )
                )
            return Seeded(mine=raised[0], service=raised[1])
    finally:
        await engine.dispose()


async def no_sideways_scroll(page: Page, url: str) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{url} scrolls sideways by {overflow}px"


async def test_alerts_by_owner_wide_and_narrow(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    seeded = await seed(browser_db, dashboard_user)
    await sign_in(page, dashboard_user)
    await page.goto("/alerts")
    await expect(page.locator(f"#alert-{seeded.mine} [data-testid=alert-owner]")).to_have_text(dashboard_user.email)
    await expect(page.locator(f"#alert-{seeded.service} [data-testid=alert-owner]")).to_have_text("Service key")
    await shot(page, screenshots, "alerts-owners-1280")

    await page.get_by_label("Whose").select_option(label="Mine")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator(f"#alert-{seeded.mine}")).to_be_visible()
    await expect(page.locator(f"#alert-{seeded.service}")).to_have_count(0)
    await expect(page.get_by_label("Whose")).to_have_value("me")

    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/alerts?owner=service")
    await expect(page.locator(f"#alert-{seeded.service}")).to_be_visible()
    await expect(page.locator(f"#alert-{seeded.mine}")).to_have_count(0)
    await no_sideways_scroll(page, "/alerts?owner=service")
    await shot(page, screenshots, "alerts-owners-375")


async def test_usage_by_owner_wide_and_narrow(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    await seed(browser_db, dashboard_user)
    await sign_in(page, dashboard_user)
    await page.goto("/usage")
    actions = page.get_by_test_id("actions")
    await expect(actions.locator("tbody tr")).to_have_count(2)
    await page.get_by_label("Whose").select_option(label="Service")
    await page.get_by_role("button", name="Filter").click()
    await expect(actions.locator("tbody tr")).to_have_count(1)
    await expect(actions).to_contain_text("CI runner")
    await expect(page.get_by_label("Whose")).to_have_value("service")
    await shot(page, screenshots, "usage-owners-1280")

    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto("/usage?owner=me")
    await expect(actions.locator("tbody tr")).to_have_count(1)
    await expect(actions).to_contain_text("My laptop")
    await no_sideways_scroll(page, "/usage?owner=me")
    await shot(page, screenshots, "usage-owners-375")


async def test_a_members_usage_page_wide_and_narrow(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    """A member's Usage page: their own key's actions only, no owner filter, no failed-authentication count."""
    await seed(browser_db, dashboard_user)  # the owner's and the service key's actions: not the member's to see
    member = DashboardUser(f"member-{dashboard_user.email}", dashboard_user.password, dashboard_user.tenant)
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.name == member.tenant))).one()
            user = await create_user(
                session, tenant_id=tenant.id, email=member.email, password=member.password, role=Role.member
            )
            key = await keys.create_key(
                session, actor=TEST_ACTOR, tenant_id=tenant.id, name="Member's Cursor", owner_user_id=user.id
            )
            session.add(
                KeyAction(
                    key_id=key.record.id,
                    tenant_id=tenant.id,
                    at=utcnow(),
                    method="GET",
                    route="/api/v1/memories",
                    action="list_memories",
                    status=200,
                    tool_type="cursor",
                    client_ip="192.0.2.9",
                )
            )
    finally:
        await engine.dispose()
    await sign_in(page, member)
    await page.goto("/usage")
    actions = page.get_by_test_id("actions")
    await expect(actions.locator("tbody tr")).to_have_count(1)
    await expect(actions).to_contain_text("Member's Cursor")
    await expect(page.get_by_label("Whose")).to_have_count(0)
    await expect(page.locator("[data-outcome=failed_auth]")).to_have_count(0)
    await shot(page, screenshots, "usage-member-1280")
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.reload()
    await no_sideways_scroll(page, "/usage")
    await shot(page, screenshots, "usage-member-375")
