"""Settings → Connected apps in Chromium against a live ``vibexp serve``: reached from the Settings navigation, the
owner sees everyone's grants (an unverified registered client, a metadata-document client, a member's, a revoked
one), revokes one after the browser's confirmation, and the page says so; "Whose" narrows to their own; screenshots
at 1280 and 375 px. ``add_connected_apps`` also fills the accessibility test's full account."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Dialog, Locator, Page, expect

from browser.conftest import DashboardUser, shots
from browser.test_dashboard_browser import sign_in
from helpers.factories import TEST_ACTOR
from oauth.flow import REDIRECT, Pkce
from vibexp.core.access import Caller, Role
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.oauth import service as oauth
from vibexp.core.oauth.models import ClientKind, OAuthClient, OAuthGrant
from vibexp.core.tenants import usecases as accounts
from vibexp.core.users import service as user_records
from vibexp.core.users import usecases as users

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: The member whose grant the owner sees (one per account: the e-mail carries the account's name).
MEMBER = "grace@{tenant}.example"


@dataclass
class ConnectedApps:
    claude: str  # the owner's grant of a registered ("unverified") client
    vscode: str  # the owner's grant of a metadata-document client
    members: str  # the member's grant
    revoked: str


async def add_connected_apps(database_url: str, user: DashboardUser) -> ConnectedApps:
    """Grants in ``user``'s account as the consent page makes them (``oauth.service.issue_code``), one exchanged for
    real tokens, one revoked."""
    engine = create_engine(database_url)
    try:
        factory = create_session_factory(engine)
        async with session_scope(factory, write=True) as session:
            tenant = await accounts.account_named(session, name=user.tenant)
            owner = await user_records.find_user(session, email=user.email)
            assert owner is not None
            member = await users.add_person(
                session,
                caller=Caller.cli(tenant.id),
                email=MEMBER.format(tenant=user.tenant),
                password="a long password",
                role=Role.member,
            )
            claude = await oauth.register_client(session, name="Claude Code", redirect_uris=[REDIRECT])
            vscode = OAuthClient(
                id="https://vscode.dev/oauth/client-metadata.json",
                name="Visual Studio Code",
                redirect_uris=["https://vscode.dev/redirect"],
                kind=ClientKind.metadata_document.value,
            )
            if await session.get(OAuthClient, vscode.id) is None:
                session.add(vscode)
                await session.flush()
            ids: list[str] = []
            for person, client, scopes in (
                (owner.id, claude, ["prompts:read", "memories:read"]),
                (owner.id, claude, ["prompts:write"]),
                (owner.id, vscode, ["prompts:read", "artifacts:read", "memories:read"]),
                (member.id, claude, ["memories:write"]),
            ):
                pkce = Pkce.new()
                code = await oauth.issue_code(
                    session,
                    tenant_id=tenant.id,
                    user_id=person,
                    client=client,
                    scopes=scopes,
                    redirect_uri=client.redirect_uris[0],
                    code_challenge=pkce.challenge,
                    resource="http://127.0.0.1/mcp/v1/connect",
                    actor=TEST_ACTOR,
                )
                issued = await oauth.exchange_code(
                    session,
                    code=code,
                    code_verifier=pkce.verifier,
                    client_id=client.id,
                    redirect_uri=client.redirect_uris[0],
                    resource=None,
                    actor=TEST_ACTOR,
                )
                ids.append(issued.grant_id)
            revoked = await session.get(OAuthGrant, ids[1])
            assert revoked is not None
            await oauth.revoke_grant(session, revoked, reason="revoked", actor=TEST_ACTOR)
    finally:
        await engine.dispose()
    return ConnectedApps(claude=ids[0], vscode=ids[2], members=ids[3], revoked=ids[1])


def _row(page: Page, grant_id: str) -> Locator:
    return page.locator(f'tr[data-grant-id="{grant_id}"]')


async def test_the_owner_lists_revokes_and_narrows(
    page: Page, browser_db: str, dashboard_user: DashboardUser, screenshots: Path
) -> None:
    apps = await add_connected_apps(browser_db, dashboard_user)
    await sign_in(page, dashboard_user)
    await page.goto("/settings/api-keys")
    await page.get_by_role("navigation", name="Settings").get_by_role("link", name="Connected apps").click()
    await expect(page.get_by_role("heading", name="Connected apps", exact=True)).to_be_visible()
    table = page.get_by_test_id("connected-apps")
    await expect(table.locator("tbody tr")).to_have_count(3)  # the Active tab: the revoked one is not there
    await expect(_row(page, apps.claude)).to_contain_text("unverified")
    await expect(_row(page, apps.vscode)).not_to_contain_text("unverified")
    await expect(_row(page, apps.vscode)).to_contain_text("vscode.dev")
    await expect(_row(page, apps.members)).to_contain_text(MEMBER.format(tenant=dashboard_user.tenant))
    await shots(page, screenshots, "connected-apps-list")

    # "Before deleting": turned on for one app in place, the page says so, and the button now turns it off.
    await expect(_row(page, apps.claude).get_by_test_id("confirm-off")).to_be_visible()
    await _row(page, apps.claude).get_by_test_id("confirm-toggle").click()
    await expect(page.get_by_role("status")).to_contain_text("now asks you before it deletes")
    await expect(_row(page, apps.claude).get_by_test_id("confirm-on")).to_have_text("Asks before deleting")
    await expect(_row(page, apps.claude).get_by_test_id("confirm-toggle")).to_contain_text("Stop asking")
    await expect(_row(page, apps.vscode).get_by_test_id("confirm-off")).to_be_visible()
    await shots(page, screenshots, "connected-apps-confirm")

    asked: list[str] = []

    async def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", confirm)
    await _row(page, apps.members).get_by_role("button", name="Revoke").click()
    await expect(page.get_by_role("status")).to_contain_text("Connected app revoked")
    assert asked and asked[0].startswith("Revoke Claude Code for grace@")
    await expect(table.locator("tbody tr")).to_have_count(2)

    await page.get_by_test_id("filter-revoked").click()
    await expect(table.locator("tbody tr")).to_have_count(2)
    await expect(_row(page, apps.members)).to_contain_text("Revoked")
    await shots(page, screenshots, "connected-apps-revoked")

    await page.get_by_test_id("filter-active").click()
    await page.get_by_test_id("owner-filter").select_option("me")
    await page.get_by_role("button", name="Show").click()
    await expect(table.locator("tbody tr")).to_have_count(2)
    await expect(page.get_by_role("heading", name="Your connected apps")).to_be_visible()


async def test_the_empty_page(page: Page, dashboard_user: DashboardUser, screenshots: Path) -> None:
    await sign_in(page, dashboard_user)
    await page.goto("/settings/connected-apps")
    await expect(page.get_by_test_id("empty")).to_contain_text("/mcp/v1/connect")
    await shots(page, screenshots, "connected-apps-empty")
