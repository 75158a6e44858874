"""Two people edit one prompt, artifact or memory at once, in Chromium with JavaScript off, on SQLite and PostgreSQL.

The second to save gets the conflict page: their unsaved text is still in the form, the other person's stored text
and a diff are shown, and nothing is overwritten until they press the separate "Overwrite with my version" button.
Pressing Save again (the form still carries the version they first read) overwrites nothing.
Screenshots of the conflict page at 1280 px and 375 px go to test-output/screenshots/.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from dashboard.pages import Person, make_person
from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORIGINAL = "First line\nSecond line\nThird line"
THEIRS = "First line\nSecond line, as Alice rewrote it\nThird line"
MINE = "First line\nSecond line\nThird line\nA fourth line only Bob added"


@dataclass(frozen=True)
class Kind:
    slug: str
    create: dict[str, Any]

    def api_path(self, created: dict[str, Any]) -> str:
        if self.slug == "artifacts":
            return f"/api/v1/artifacts/{created['project']}/{created['slug']}"
        return f"/api/v1/{self.slug}/{created['id']}"

    def page_path(self, created: dict[str, Any]) -> str:
        return self.api_path(created).removeprefix("/api/v1")


KINDS = [
    Kind("prompts", {"name": "conflict-demo", "description": "Checks a diff", "content": ORIGINAL}),
    Kind("artifacts", {"project": "webapp", "slug": "conflict-notes", "title": "Design notes", "content": ORIGINAL}),
    Kind("memories", {"content": ORIGINAL, "tags": ["notes"]}),
]


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(database_url)
    start_servers([live], tmp_path_factory.mktemp("conflict-logs"))
    with live:
        yield live


@pytest.fixture
async def person(database_url: str) -> AsyncIterator[Person]:
    engine = create_engine(database_url)
    try:
        yield await make_person(create_session_factory(engine))
    finally:
        await engine.dispose()


async def signed_in(browser: Browser, server: LiveServer, person: Person, width: int = 1280) -> BrowserContext:
    """A browser with JavaScript off (the conflict page must work without it), signed in as ``person``."""
    context = await browser.new_context(
        base_url=server.url, java_script_enabled=False, viewport={"width": width, "height": 900}
    )
    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("E-mail").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await page.close()
    return context


def stored(server: LiveServer, person: Person, kind: Kind, created: dict[str, Any]) -> dict[str, Any]:
    response = httpx.get(f"{server.url}{kind.api_path(created)}", headers=person.account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def expect_conflict(page: Page) -> None:
    await expect(page.get_by_test_id("conflict")).to_contain_text("someone else changed this")
    await expect(page.get_by_test_id("their-text")).to_have_text(THEIRS)
    await expect(page.locator("#f-content")).to_have_value(MINE)  # nothing the person typed is lost
    diff = page.get_by_test_id("conflict-diff")
    await expect(diff).to_contain_text("-Second line, as Alice rewrote it")
    await expect(diff).to_contain_text("+A fourth line only Bob added")
    assert "If-Match" not in await page.content()


@pytest.mark.parametrize("kind", KINDS, ids=[k.slug for k in KINDS])
async def test_a_racing_edit_gets_the_conflict_page_and_overwrites_only_when_asked(
    browser: Browser, server: LiveServer, person: Person, kind: Kind, database_url: str, artifacts_dir: Path
) -> None:
    body = dict(kind.create)
    if kind.slug == "prompts":
        body["name"] = f"{body['name']}-{secrets.token_hex(3)}"
    created = httpx.post(f"{server.url}/api/v1/{kind.slug}", json=body, headers=person.account.headers)
    assert created.status_code == 201, created.text
    path = kind.page_path(created.json())

    alice_context = await signed_in(browser, server, person)
    bob_context = await signed_in(browser, server, person)
    try:
        alice, bob = await alice_context.new_page(), await bob_context.new_page()
        await alice.goto(path)
        await bob.goto(path)  # both read version 1

        await alice.locator("#f-content").fill(THEIRS)
        await alice.get_by_role("button", name="Save", exact=True).click()
        await expect(alice.get_by_text("Saved.")).to_be_visible()

        await bob.locator("#f-content").fill(MINE)
        await bob.get_by_role("button", name="Save", exact=True).click()
        await expect_conflict(bob)
        assert stored(server, person, kind, created.json())["content"] == THEIRS

        backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
        shots = artifacts_dir / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        await bob.screenshot(path=str(shots / f"conflict-{kind.slug}-{backend}-1280.png"), full_page=True)
        await bob.set_viewport_size({"width": 375, "height": 800})
        await expect_conflict(bob)
        width = await bob.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the conflict page scrolls sideways on a phone ({width} px)"
        await bob.screenshot(path=str(shots / f"conflict-{kind.slug}-{backend}-375.png"), full_page=True)

        # Save again without choosing to overwrite: still the conflict page, their text still stored.
        await bob.get_by_role("button", name="Save", exact=True).click()
        await expect_conflict(bob)
        after = stored(server, person, kind, created.json())
        assert after["content"] == THEIRS and after["version"] == 2

        # The explicit button overwrites.
        await bob.get_by_role("button", name="Overwrite with my version").click()
        await expect(bob.get_by_text("Saved.")).to_be_visible()
        after = stored(server, person, kind, created.json())
        assert after["content"] == MINE and after["version"] == 3
    finally:
        await alice_context.close()
        await bob_context.close()
