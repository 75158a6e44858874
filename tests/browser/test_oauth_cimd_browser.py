"""A Client ID Metadata Document client in Chromium against a live ``vibexp serve`` (its ``SSL_CERT_FILE`` the test
CA, ``VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS`` on so it may fetch from loopback): the consent page shows the client's
name "from" the host that served its document and no "unverified" badge; Allow returns a code the token endpoint
exchanges, and the token lists tools on /mcp/v1/connect. A document that names another client_id is an error page,
not a redirect. axe finds nothing; both widths are screenshotted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from browser.conftest import DashboardUser, shots
from browser.oauth_pages import BrowserAuthorization
from browser.test_accessibility import Auditor, axe_context, axe_source  # noqa: F401 - fixtures used below
from helpers.receiver import Answer, Receiver
from helpers.servers import LiveServer
from helpers.tls import local_ca
from oauth.flow import REDIRECT, list_tools

pytestmark = [pytest.mark.browser, pytest.mark.clients, pytest.mark.slow]


@pytest.fixture(scope="module")
def live_server(browser_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"SSL_CERT_FILE": str(local_ca().ca_file), "VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS": "true"}
    server = LiveServer(browser_db, env=env).start(log_dir=tmp_path_factory.mktemp("browser-logs"))
    try:
        yield server
    finally:
        server.stop()


def _document(client_id: str, **changes: object) -> Answer:
    body = {
        "client_id": client_id,
        "client_name": "Example Connector",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        **changes,
    }
    return Answer(headers={"Content-Type": "application/json"}, body=json.dumps(body).encode())


async def test_metadata_document_client_consent_in_chromium(
    axe_context: BrowserContext,  # noqa: F811 - the fixture imported above
    axe_source: str,  # noqa: F811
    live_server: LiveServer,
    dashboard_user: DashboardUser,
    screenshots: Path,
) -> None:
    base = live_server.url
    with Receiver(tls=local_ca().server_context()) as documents:
        client_id = documents.url("/oauth/client-metadata.json", host="localhost")
        documents.script(_document(client_id))
        flow = BrowserAuthorization(base, client_id, state="s-cimd", scope="prompts:read")
        page = await flow.open_signed_out(axe_context, dashboard_user)

        await expect(page.get_by_role("heading", name="Connect Example Connector")).to_be_visible()
        await expect(page.get_by_test_id("client-host")).to_contain_text("From localhost")
        await expect(page.get_by_test_id("unverified")).to_have_count(0)
        await expect(page.get_by_label("Read prompts")).to_be_checked()
        await shots(page, screenshots, "oauth-consent-cimd")
        auditor = Auditor(page, axe_source, screenshots)
        await auditor.check_current("/oauth/authorize (consent, metadata document client)")
        auditor.assert_clean()

        await page.get_by_role("button", name="Allow").click()
        await expect(page).to_have_title("Done")
        assert flow.answer()["state"] == "s-cimd"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            token = await flow.exchange(http)
            assert token.status_code == 200, token.text
            listed = await list_tools(http, token.json()["access_token"])
            assert listed.status_code == 200, listed.text
        assert len(documents.received) == 1  # cached in the server process from the first page to the token

        # A document that names another client_id: the person gets a page, the browser goes nowhere else.
        other = documents.url("/oauth/other.json", host="localhost")
        documents.script(_document(client_id))  # served at ``other``, naming the first URL
        await page.goto(flow.url(client_id=other))
        await expect(page.get_by_role("heading", name="Cannot connect this application")).to_be_visible()
        await expect(page.get_by_text("names another client_id")).to_be_visible()
        assert urlsplit(page.url).path == "/oauth/authorize"
        await shots(page, screenshots, "oauth-cimd-refused")
        await auditor.check_current("/oauth/authorize (refused metadata document)")
        auditor.assert_clean()
