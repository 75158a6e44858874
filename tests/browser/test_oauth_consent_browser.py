"""The OAuth consent page in Chromium against a live ``vibexp serve``: an application's authorization link while
signed out goes through the dashboard's sign-in and back to the consent page, which shows the client (marked
unverified), where it returns and the account; Allow sends the browser to the client's redirect with a code the
token endpoint exchanges (the page's form-action allows that redirect). axe finds nothing at 1280 and 375 px, and
both widths are screenshotted."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from browser.conftest import DashboardUser, shots
from browser.oauth_pages import BrowserAuthorization
from browser.test_accessibility import Auditor, axe_context, axe_source  # noqa: F401 - fixtures used below
from helpers.servers import LiveServer
from oauth.flow import REDIRECT
from vibexp.core.access import Caller, Role
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.members import usecases as members
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.schemas import TenantCreate

pytestmark = [pytest.mark.browser, pytest.mark.clients, pytest.mark.slow]


async def test_consent_in_chromium_signs_in_shows_the_client_and_returns_a_code(
    axe_context: BrowserContext,  # noqa: F811 - the fixture imported above
    axe_source: str,  # noqa: F811
    live_server: LiveServer,
    browser_db: str,
    dashboard_user: DashboardUser,
    screenshots: Path,
) -> None:
    base = live_server.url
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        registered = await http.post(
            "/oauth/register", json={"client_name": "Claude Code", "redirect_uris": [REDIRECT]}
        )
        client_id = registered.json()["client_id"]
        flow = BrowserAuthorization(base, client_id, state="s-123", scope="prompts:read memories:read")
        page = await flow.open_signed_out(axe_context, dashboard_user)

        await expect(page.get_by_role("heading", name="Connect Claude Code")).to_be_visible()
        await expect(page.get_by_test_id("unverified")).to_be_visible()
        await expect(page.get_by_test_id("redirect-host")).to_have_text("127.0.0.1:33418")
        await expect(page.get_by_label("Read prompts")).to_be_checked()
        await expect(page.get_by_label("Read memories")).to_be_checked()
        await expect(page.get_by_label("Read artifacts")).not_to_be_checked()  # not asked for
        await expect(page.get_by_label("Write prompts")).not_to_be_checked()
        await expect(page.get_by_label("Ask me before deleting or replacing anything")).to_be_checked()  # cautious
        await shots(page, screenshots, "oauth-consent")
        auditor = Auditor(page, axe_source, screenshots)
        await auditor.check_current("/oauth/authorize (consent)")
        auditor.assert_clean()

        await page.get_by_role("button", name="Allow").click()
        await expect(page).to_have_title("Done")
        back = flow.answer()
        assert back["state"] == "s-123" and back["iss"] == f"{base}/oauth"
        token = await flow.exchange(http)
        assert token.status_code == 200, token.text
        assert set(token.json()["scope"].split()) == {"prompts:read", "memories:read"}

        # Invited into a second account: the page offers a picker of the two.
        await join_second_account(browser_db, dashboard_user)
        await page.goto(flow.url(state="s-456"))
        picker = page.get_by_label("Account", exact=True)
        await expect(picker).to_be_visible()
        await expect(picker.locator("option")).to_have_count(2)
        await shots(page, screenshots, "oauth-consent-picker")
        await auditor.check_current("/oauth/authorize (consent, account picker)")
        auditor.assert_clean()


async def join_second_account(database_url: str, user: DashboardUser) -> None:
    """The user accepts a viewer invitation into a new account (what the invitation link does)."""
    engine = create_engine(database_url)
    try:
        factory = create_session_factory(engine)
        async with session_scope(factory, write=True) as db:
            tenant = await tenants.create_tenant(db, data=TenantCreate(name=f"second-{secrets.token_hex(3)}"))
            tenant_id = tenant.id
        async with session_scope(factory, write=True) as db:
            invitation = await members.invite(db, caller=Caller.cli(tenant_id), email=user.email, role=Role.viewer)
        async with session_scope(factory, write=True) as db:
            await members.accept_invitation(db, token=invitation.token, password=user.password)
    finally:
        await engine.dispose()
