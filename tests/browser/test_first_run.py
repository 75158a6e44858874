"""A newcomer's first run, in Chromium: an empty database, the setup link from the server log, the first account.

Also ``/docs`` (Swagger UI) loads with every request going to the server itself, and the dashboard's "API key
created" page survives reload and back/forward without minting or showing a key again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from dashboard.pages import PASSWORD as PERSON_PASSWORD
from dashboard.pages import make_person
from helpers.databases import sqlite_url
from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.keys import service as keys
from vibexp.core.migrate import upgrade

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/setup\?token=[A-Za-z0-9_-]+)")
PASSWORD = "first-run-password-123"


@pytest.fixture(scope="module")
def fresh_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sqlite_url(tmp_path_factory.mktemp("fresh-db"))
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def fresh_server(fresh_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server on an empty database: no tenant, no user (as after `make run` on a fresh clone)."""
    server = LiveServer(fresh_db)
    start_servers([server], tmp_path_factory.mktemp("fresh-logs"))
    with server:
        yield server


async def test_first_run_setup_link_creates_the_first_account_in_the_browser(
    browser: Browser, fresh_server: LiveServer
) -> None:
    match = SETUP_LINK.search(fresh_server.log())
    assert match, fresh_server.log()
    link = match.group(1)
    assert urlparse(link).port == fresh_server.port
    context = await browser.new_context(base_url=fresh_server.url)
    try:
        page = await context.new_page()
        await page.goto("/")
        await expect(page).to_have_url(re.compile(r"/login$"))
        notice = page.get_by_test_id("first-run")
        await expect(notice).to_contain_text("No account exists yet")
        await expect(notice).to_contain_text("/setup?token=")

        await page.goto(link)
        await expect(page.get_by_role("heading", name="Set up VibeXP")).to_be_visible()
        await page.get_by_label("Account name").fill("newcomer")
        await page.get_by_label("E-mail").fill("me@example.com")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_label("Password again").fill(PASSWORD + "x")
        await page.get_by_role("button", name="Create account").click()
        await expect(page.get_by_text("The two passwords differ.")).to_be_visible()  # the link still works
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_label("Password again").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()  # signed in

        # The token is dead now, in this browser and any other.
        await page.goto(link)
        await expect(page.get_by_text("This setup link is not valid")).to_be_visible()
        other = await browser.new_context(base_url=fresh_server.url)
        try:
            stranger = await other.new_page()
            await stranger.goto(link)
            await expect(stranger.get_by_text("This setup link is not valid")).to_be_visible()
            await stranger.goto("/login")
            await expect(stranger.get_by_test_id("first-run")).to_have_count(0)
            # The new user signs in like anyone else.
            await stranger.get_by_label("E-mail").fill("me@example.com")
            await stranger.get_by_label("Password").fill(PASSWORD)
            await stranger.get_by_role("button", name="Sign in").click()
            await expect(stranger.get_by_role("heading", name="Overview")).to_be_visible()
        finally:
            await other.close()
    finally:
        await context.close()
    assert httpx.get(f"{fresh_server.url}{urlparse(link).path}?token=guess").status_code == 404


async def test_docs_load_everything_from_this_server(browser: Browser, fresh_server: LiveServer) -> None:
    context = await browser.new_context(base_url=fresh_server.url)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    try:
        page = await context.new_page()
        await page.goto("/docs")
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text("VibeXP API")
        await expect(page.locator(".opblock-tag-section").first).to_be_visible()
    finally:
        await context.close()
    assert any(url.endswith("/openapi.json") for url in requested)
    foreign = [url for url in requested if not url.startswith(fresh_server.url) and not url.startswith("data:")]
    assert not foreign, foreign


async def test_reloading_and_going_back_never_shows_a_key_again(
    browser: Browser, fresh_server: LiveServer, fresh_db: str
) -> None:
    engine = create_engine(fresh_db)
    factory = create_session_factory(engine)
    try:
        person = await make_person(factory)
        await _reload_and_back(browser, fresh_server, person.email)
        async with factory() as session:
            names = [k.name for k in await keys.list_keys(session, tenant_id=person.account.tenant.id)]
        assert names.count("reload-me") == 1, names  # one key, however often the page was reloaded
    finally:
        await engine.dispose()


async def _reload_and_back(browser: Browser, fresh_server: LiveServer, email: str) -> None:
    context = await browser.new_context(base_url=fresh_server.url)
    try:
        page = await context.new_page()
        await page.goto("/login")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Password").fill(PERSON_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        await page.goto("/settings/api-keys")
        await page.locator("summary", has_text="Create New API Key").click()
        await page.get_by_label("Name").fill("reload-me")
        await page.get_by_label("Full access").check()
        await page.get_by_role("button", name="Create", exact=True).click()
        key = await page.get_by_test_id("new-key").input_value()
        assert re.fullmatch(r"vib_[0-9a-f]{64}", key)
        await _never_again(page, key)
        await page.go_back()
        await page.go_forward()
        await _never_again(page, key)
    finally:
        await context.close()


async def _never_again(page: Page, key: str) -> None:
    await page.reload()
    await expect(page.get_by_text("shown once and cannot be shown again")).to_be_visible()
    assert key not in await page.content()
