"""Content pages in Chromium (issue 31 item 6): the prompt list with versions and the production marker, the read
view, a diff with long lines that wrap, a rendered Markdown artifact, and the audit log's changes; at 1280 px and
375 px, where nothing may scroll sideways."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from browser.conftest import DashboardUser
from browser.test_dashboard_browser import shot, sign_in
from helpers.factories import TEST_ACTOR
from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.keys import service as keys
from vibexp.core.tenants.models import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def a_key(browser_db: str, user: DashboardUser) -> str:
    engine = create_engine(browser_db)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            tenant = (await session.scalars(select(Tenant).where(Tenant.name == user.tenant))).one()
            new = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="Writer", source="cli")
            return new.plaintext
    finally:
        await engine.dispose()


async def no_sideways_scroll(page: Page) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"


async def test_content_pages_wide_and_narrow(
    page: Page, browser_db: str, live_server: LiveServer, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    key = await a_key(browser_db, dashboard_user)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"{live_server.url}/api/v1", headers=headers) as api:
        first = "Review the diff in {{file}} for bugs. " * 12
        prompt = (
            await api.post("/prompts", json={"name": "code-review", "description": "Reviews a diff", "content": first})
        ).json()
        assert (await api.put(f"/prompts/{prompt['id']}", json={"content": first + "\nAlso check style."})).is_success
        assert (await api.put(f"/prompts/{prompt['id']}/labels/production", json={"version": 1})).is_success
        await api.post("/prompts", json={"name": "summarise", "content": "Summarise {{text}} in three bullets."})
        markdown = (
            "# Design notes\n\nKeys are **hashed** with SHA-256; see [the guide](https://example.com/guide).\n\n"
            "- one\n- two\n\n| Field | Meaning |\n|---|---|\n| prefix | shown |\n\n<script>alert(1)</script>\n"
        )
        artifact = {"project": "docs", "slug": "design", "title": "Design notes", "content_type": "text/markdown"}
        assert (await api.post("/artifacts", json={**artifact, "content": markdown})).is_success

    await sign_in(page, dashboard_user)
    for width in (1280, 375):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.goto("/prompts")
        item = page.locator("li.item", has_text="code-review")
        await expect(item.get_by_test_id("production")).to_have_text("production: v1")
        await expect(item.get_by_test_id("version")).to_have_text("v2")
        await expect(item.get_by_test_id("summary")).to_have_text("Reviews a diff")
        await no_sideways_scroll(page)
        await shot(page, screenshots, f"content-prompts-{width}")

        await item.get_by_role("link", name="code-review").click()
        await expect(page.get_by_test_id("prompt-content")).to_contain_text("Also check style.")
        await no_sideways_scroll(page)
        await shot(page, screenshots, f"content-prompt-read-{width}")

        await page.goto(f"/prompts/{prompt['id']}/versions/2")
        await expect(page.get_by_test_id("version-diff")).to_be_visible()
        await no_sideways_scroll(page)
        await shot(page, screenshots, f"content-prompt-diff-{width}")

        await page.goto("/artifacts/docs/design")
        preview = page.get_by_test_id("markdown-preview")
        await expect(preview.get_by_role("heading", name="Design notes")).to_be_visible()
        await expect(preview.get_by_role("link", name="the guide")).to_have_attribute(
            "href", "https://example.com/guide"
        )
        await expect(preview).to_contain_text("<script>alert(1)</script>")  # shown as text, never run
        await no_sideways_scroll(page)
        await shot(page, screenshots, f"content-artifact-markdown-{width}")

        await page.goto("/settings/audit-log")
        await expect(page.get_by_test_id("changes").first).to_be_visible()
        await no_sideways_scroll(page)
        await shot(page, screenshots, f"audit-{width}")
