"""A live ``vibexp serve`` on its own SQLite file, a signed-up user, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from helpers.databases import sqlite_url
from helpers.factories import TEST_ACTOR
from helpers.servers import LiveServer
from vibexp.core.access import Role
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.migrate import upgrade_async
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.users.service import create_user, find_user, join

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery-staple"


@dataclass
class DashboardUser:
    email: str
    password: str
    tenant: str


@pytest.fixture(scope="module")
async def browser_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sqlite_url(tmp_path_factory.mktemp("browser-db"))
    await upgrade_async(url)
    return url


@pytest.fixture(scope="module")
def live_server(browser_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(browser_db).start(log_dir=tmp_path_factory.mktemp("browser-logs"))
    try:
        yield server
    finally:
        server.stop()


async def make_dashboard_user(browser_db: str) -> DashboardUser:
    """A fresh tenant with one dashboard user, its owner (made through the core services, as ``vibexp user create``
    does)."""
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = await tenants.create_tenant(session, data=TenantCreate(name=f"t-{secrets.token_hex(4)}"))
            user = await create_user(
                session, tenant_id=tenant.id, email=f"{tenant.name}@example.com", password=PASSWORD
            )
            return DashboardUser(email=user.email, password=PASSWORD, tenant=tenant.name)
    finally:
        await engine.dispose()


@pytest.fixture
async def dashboard_user(browser_db: str) -> DashboardUser:
    """A fresh tenant with one dashboard user."""
    return await make_dashboard_user(browser_db)


@dataclass
class TwoAccountUser:
    """A dashboard user who owns ``user.tenant`` and is a ``second_role`` in ``second`` (the account switcher)."""

    user: DashboardUser
    second: str
    second_id: str
    second_role: str


@pytest.fixture
async def two_account_user(browser_db: str, dashboard_user: DashboardUser) -> TwoAccountUser:
    """``dashboard_user``, also a viewer of a second account (joined as accepting an invitation joins)."""
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = await tenants.create_tenant(session, data=TenantCreate(name=f"second-{secrets.token_hex(3)}"))
            user = await find_user(session, email=dashboard_user.email)
            assert user is not None
            await join(session, tenant_id=tenant.id, user=user, role=Role.viewer, actor=TEST_ACTOR)
            return TwoAccountUser(dashboard_user, tenant.name, tenant.id, Role.viewer.value)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser, live_server: LiveServer) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


@pytest.fixture
def screenshots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


#: The widths every changed page is looked at (README: 1280 px desktop, 375 px phone).
WIDTHS = {"desktop": 1280, "mobile": 375}


async def shots(page: Page, screenshots: Path, name: str) -> None:
    """The page at both widths (full page) as ``<name>-desktop.png`` and ``<name>-mobile.png``, then 1280 px again."""
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(screenshots / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})
