"""axe-core over every dashboard page, in Chromium against a live ``vibexp serve`` (issue 31): zero violations of
WCAG 2.0/2.1 A and AA, signed out and in, for an empty account and a full one, error pages included, at 1280 px
and at 375 px.

axe-core is the npm package tests/clients/package-lock.json pins (``make clients``); it is injected into each page
(the context bypasses the dashboard's Content-Security-Policy for that one script, nothing else changes). The page
list is derived from the dashboard's routes: ``test_every_dashboard_page_is_checked`` fails when a page is added
without a way to reach it here, so a new page cannot be forgotten.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from browser.conftest import DashboardUser, TwoAccountUser
from browser.test_connected_apps_browser import add_connected_apps
from browser.test_dashboard_browser import create_key, shot, sign_in
from browser.test_usage_browser import add_grant_usage
from helpers.databases import sqlite_url
from helpers.factories import TEST_ACTOR
from helpers.fixtures import start_servers
from helpers.servers import REPO, LiveServer
from vibexp.api.dashboard.routes import router as dashboard_router
from vibexp.core.alerts.models import Alert, AlertKind
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys import service as keys
from vibexp.core.migrate import upgrade
from vibexp.core.tenants.models import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.clients, pytest.mark.slow]

AXE = REPO / "tests" / "clients" / "node_modules" / "axe-core" / "axe.min.js"
#: WCAG 2.0 and 2.1, levels A and AA: what issue 31 asks for.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WIDTHS = (1280, 375)
SETUP_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/setup\?token=[A-Za-z0-9_-]+)")

RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
  }));
}"""


@dataclass
class Seed:
    """What a full account holds, by id, for the pages that show one object."""

    key_id: str
    revoked_key_id: str
    prompt_id: str
    artifact: str  # project/slug
    memory_id: str


#: Each GET page of the dashboard (its route template) and the addresses that show it, for a full account.
#: ``None``: reached by a flow in the test itself (the "key created" page exists once, after the create form).
PAGES: dict[str, Callable[[Seed], list[str]] | None] = {
    "/login": lambda s: ["/login", "/login?next=/usage"],
    "/setup": lambda s: ["/setup?token=not-a-valid-token"],  # the valid link: test_first_run_setup_page
    "/": lambda s: ["/"],
    "/settings/api-keys": lambda s: ["/settings/api-keys"],
    "/settings/api-keys/created/{flash_id}": None,
    "/settings/api-keys/{key_id}": lambda s: [
        f"/settings/api-keys/{s.key_id}",
        f"/settings/api-keys/{s.revoked_key_id}",
    ],
    "/settings/api-keys/{key_id}/revoke": lambda s: [f"/settings/api-keys/{s.key_id}/revoke"],
    "/settings/api-keys/{key_id}/delete": lambda s: [f"/settings/api-keys/{s.revoked_key_id}/delete"],
    "/usage": lambda s: ["/usage"],
    "/prompts": lambda s: ["/prompts", "/prompts?q=review"],
    "/prompts/new": lambda s: ["/prompts/new"],
    "/prompts/{id}": lambda s: [f"/prompts/{s.prompt_id}"],
    "/prompts/{id}/view": lambda s: [f"/prompts/{s.prompt_id}/view"],
    "/prompts/{prompt_id}/versions/{number}": lambda s: [
        f"/prompts/{s.prompt_id}/versions/1",
        f"/prompts/{s.prompt_id}/versions/2",
    ],
    "/artifacts": lambda s: ["/artifacts"],
    "/artifacts/new": lambda s: ["/artifacts/new"],
    "/artifacts/{project}/{slug}": lambda s: [f"/artifacts/{s.artifact}"],
    "/memories": lambda s: ["/memories"],
    "/memories/new": lambda s: ["/memories/new"],
    "/memories/{id}": lambda s: [f"/memories/{s.memory_id}"],
    "/settings/export": lambda s: ["/settings/export"],
    "/settings/account": lambda s: ["/settings/account"],
    "/settings/members": lambda s: ["/settings/members"],
    "/settings/connected-apps": lambda s: ["/settings/connected-apps", "/settings/connected-apps?status=all"],
    "/settings/alerts": lambda s: ["/settings/alerts"],
    "/join": lambda s: ["/join", "/join#vibinv_not-a-real-token"],
    "/settings/audit-log": lambda s: ["/settings/audit-log", f"/settings/audit-log?key={s.key_id}"],
    "/alerts": lambda s: ["/alerts"],
}
#: GET routes that answer no page.
NOT_PAGES = {"/settings/export/download": "a JSON download"}
#: Error pages, signed in: a missing object (404), a bad filter (422), an address no route has.
ERROR_PAGES = [
    "/prompts/00000000-0000-0000-0000-000000000000",
    "/settings/audit-log?action=not-an-action",
    "/no-such-page",
]
#: Pages an account with nothing in it shows.
EMPTY_PAGES = [
    "/",
    "/settings/api-keys",
    "/usage",
    "/prompts",
    "/prompts?q=nothing-matches",
    "/artifacts",
    "/memories",
    "/settings/export",
    "/settings/members",
    "/settings/connected-apps",
    "/settings/alerts",
    "/settings/audit-log",
    "/alerts",
]


def get_routes() -> set[str]:
    return {
        context.path_format
        for context in iter_route_contexts(dashboard_router.routes)
        if isinstance(context.original_route, APIRoute)
        and "GET" in (context.original_route.methods or ())
        and context.path_format
    }


def test_every_dashboard_page_is_checked() -> None:
    """A GET route of the dashboard missing from PAGES (or a stale entry) fails here: add how to reach it."""
    assert get_routes() == set(PAGES) | set(NOT_PAGES)


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make clients` (npm ci of tests/clients)", pytrace=False)
    return AXE.read_text()


@pytest.fixture
async def axe_context(browser: Browser, live_server: LiveServer) -> AsyncIterator[BrowserContext]:
    # The dashboard's CSP allows only its own scripts; bypassing it lets the test inject axe, and only that.
    ctx = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        yield ctx
    finally:
        await ctx.close()


class Auditor:
    """Runs axe on pages and collects every violation, so one run reports all pages at once."""

    def __init__(self, page: Page, axe_source: str, screenshots: Path) -> None:
        self.page, self.axe_source, self.screenshots = page, axe_source, screenshots
        self.found: dict[str, list[dict[str, Any]]] = {}
        self.checked: list[str] = []

    async def check_current(self, label: str) -> None:
        for width in WIDTHS:
            await self.page.set_viewport_size({"width": width, "height": 900})
            if not await self.page.evaluate("typeof window.axe !== 'undefined'"):
                await self.page.add_script_tag(content=self.axe_source)
            violations = await self.page.evaluate(RUN_AXE, TAGS)
            self.checked.append(f"{label} @{width}")
            if violations:
                self.found[f"{label} @{width}"] = violations
                name = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")[:80]
                await shot(self.page, self.screenshots, f"axe-{name}-{width}")
        await self.page.set_viewport_size({"width": 1280, "height": 900})

    async def check(self, url: str, *, label: str | None = None) -> None:
        await self.page.goto(url)
        await self.check_current(label or url)

    def assert_clean(self) -> None:
        assert not self.found, "axe violations:\n" + json.dumps(self.found, indent=1)


@pytest.fixture
async def auditor(axe_context: BrowserContext, axe_source: str, screenshots: Path) -> Auditor:
    return Auditor(await axe_context.new_page(), axe_source, screenshots)


async def fill_account(live_server: LiveServer, browser_db: str, user: DashboardUser) -> Seed:
    """A full account: keys (one revoked), usage, alerts, prompts with versions, an artifact, a memory, connected
    apps (one revoked, one a member's)."""
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.name == user.tenant))).one()
            new = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="Deploy bot", source="cli")
            retired = await keys.create_key(
                session, actor=TEST_ACTOR, tenant_id=tenant.id, name="Old laptop", source="cli"
            )
            await keys.revoke_key(session, key=retired.record, actor=TEST_ACTOR)
            for kind, key_id, details in (
                (AlertKind.new_network, new.record.id, {"network": "198.51.100.0/24"}),
                (AlertKind.retired_key_used, retired.record.id, {"client_ip": "203.0.113.9"}),
            ):
                session.add(Alert(tenant_id=tenant.id, key_id=key_id, kind=kind.value, details=details))
    finally:
        await engine.dispose()
    apps = await add_connected_apps(browser_db, user)
    await add_grant_usage(browser_db, tenant_id=tenant.id, grant_id=apps.claude)
    headers = {"Authorization": f"Bearer {new.plaintext}", "User-Agent": "python-requests/2.32"}
    async with httpx.AsyncClient(base_url=f"{live_server.url}/api/v1", headers=headers) as api:
        prompt = (
            await api.post(
                "/prompts",
                json={"name": "code-review", "description": "Reviews a diff", "content": "Review {{diff}}"},
            )
        ).json()
        long_line = "Review this diff carefully, " * 20
        assert (await api.put(f"/prompts/{prompt['id']}", json={"content": long_line})).status_code == 200
        artifact = (
            await api.post(
                "/artifacts",
                json={
                    "project": "docs",
                    "slug": "readme",
                    "title": "Read me",
                    "content_type": "text/markdown",
                    "content": "# Title\n\nSome *text* and a [link](https://example.com).\n\n- one\n- two\n",
                },
            )
        ).json()
        memory = (await api.post("/memories", json={"content": "The deploy runs on Fridays", "project": "docs"})).json()
        assert (await api.get("/prompts/not-a-prompt")).status_code == 404  # a refused action in the log
        invited = await api.post("/members/invitations", json={"email": "new.hire@example.com", "role": "member"})
        assert invited.status_code == 201, invited.text  # Settings → Members lists a pending invitation
    return Seed(
        key_id=new.record.id,
        revoked_key_id=retired.record.id,
        prompt_id=prompt["id"],
        artifact=f"{artifact['project']}/{artifact['slug']}",
        memory_id=memory["id"],
    )


async def test_signed_out_pages(auditor: Auditor, dashboard_user: DashboardUser) -> None:
    for url in ["/login", "/login?next=/usage", "/setup?token=not-a-valid-token", "/join", "/no-such-page"]:
        await auditor.check(url)
    page = auditor.page
    await page.goto("/login")
    await page.get_by_label("E-mail").fill(dashboard_user.email)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await auditor.check_current("/login (wrong password)")
    auditor.assert_clean()


async def test_empty_account_pages(auditor: Auditor, dashboard_user: DashboardUser) -> None:
    await sign_in(auditor.page, dashboard_user)
    for url in EMPTY_PAGES:
        await auditor.check(url, label=f"empty {url}")
    auditor.assert_clean()


async def test_full_account_pages(
    auditor: Auditor, dashboard_user: DashboardUser, live_server: LiveServer, browser_db: str
) -> None:
    seed = await fill_account(live_server, browser_db, dashboard_user)
    page = auditor.page
    await sign_in(page, dashboard_user)
    for urls in PAGES.values():
        if urls is not None:
            for url in urls(seed):
                await auditor.check(url)
    for url in ERROR_PAGES:
        await auditor.check(url, label=f"error {url}")

    # The create form with its errors listed, then the one "key created" page.
    await page.goto("/settings/api-keys")
    await page.locator("summary", has_text="Create New API Key").click()
    await auditor.check_current("/settings/api-keys (create form open)")
    await create_key(page, "Accessibility check")
    await auditor.check_current("/settings/api-keys/created/{flash_id}")
    await page.reload()
    await auditor.check_current("/settings/api-keys/created/{flash_id} (reloaded)")
    # Alerts settings with every error listed.
    await page.goto("/settings/alerts")
    await page.get_by_label("Webhook URL").fill("ftp://alerts.example.com/hook")
    await page.locator("#f-working_hours").fill("whenever")
    await page.get_by_role("button", name="Save alerts settings").click()
    await expect(page.get_by_test_id("error-summary")).to_be_visible()
    await auditor.check_current("/settings/alerts (errors)")
    assert len(auditor.checked) >= 2 * (sum(len(u(seed)) for u in PAGES.values() if u) + len(ERROR_PAGES))
    auditor.assert_clean()


async def test_account_switcher(auditor: Auditor, two_account_user: TwoAccountUser) -> None:
    """The navigation of a person in two accounts: the switcher closed and open, then the page it leads to (with
    its notice), on a page with the Settings navigation too."""
    page = auditor.page
    await sign_in(page, two_account_user.user)
    await auditor.check("/settings/api-keys", label="switcher closed")
    switcher = page.get_by_test_id("account-switcher")
    await switcher.locator("summary").click()
    await expect(switcher.get_by_role("button")).to_be_visible()
    await auditor.check_current("switcher open")
    await switcher.get_by_role("button").click()
    await expect(page.get_by_test_id("page-notice")).to_be_visible()
    await auditor.check_current("switched (notice)")
    auditor.assert_clean()


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server on an empty database, so its first-run setup link is valid."""
    url = sqlite_url(tmp_path_factory.mktemp("a11y-fresh-db"))
    upgrade(url)
    server = LiveServer(url)
    start_servers([server], tmp_path_factory.mktemp("a11y-fresh-logs"))
    with server:
        yield server


async def test_first_run_setup_page(
    browser: Browser, fresh_server: LiveServer, axe_source: str, screenshots: Path
) -> None:
    match = SETUP_LINK.search(fresh_server.log())
    assert match, fresh_server.log()
    ctx = await browser.new_context(base_url=fresh_server.url, bypass_csp=True)
    try:
        auditor = Auditor(await ctx.new_page(), axe_source, screenshots)
        await auditor.check("/login", label="/login (first run)")
        await auditor.check(match.group(1), label="/setup (valid link)")
        await auditor.page.get_by_role("button").last.click()  # submitted empty: the form's errors
        await auditor.check_current("/setup (errors)")
        auditor.assert_clean()
    finally:
        await ctx.close()
