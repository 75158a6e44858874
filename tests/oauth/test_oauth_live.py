"""OAuth against real ``vibexp serve`` processes (two replicas on one database, SQLite and PostgreSQL):

- the whole flow with httpx as client and browser (register, sign in, consent with the dashboard session, code,
  token) on one replica, the token used on the other, a revocation on the first refused on the second within 1 s,
  and the grant's usage written;
- the MCP Python SDK's own ``OAuthClientProvider``: discovery from the 401, Dynamic Client Registration, PKCE, the
  consent page answered over HTTP with the person's dashboard session, the code exchange, tools listed and called,
  and a refresh once the client considers its token expired.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx
import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp_types import Implementation
from pydantic import AnyUrl
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.servers import LiveServer
from mcp import Client
from oauth.flow import REDIRECT, consent_form, list_tools, new_flow, post_form, query_of
from vibexp.core.oauth.models import OAuthGrant


async def test_flow_on_one_replica_revocation_reaches_the_other_within_a_second(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    first, second = two_servers
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
        flow = await new_flow(http, db_factory, base=first.url)
        tokens = await flow.tokens()
        other = f"{second.url}/mcp/v1/connect"
        assert (await list_tools(http, tokens["access_token"], other)).status_code == 200  # verified (and cached) there
        revoked = await http.post("/oauth/revoke", data={"token": tokens["access_token"], "client_id": flow.client_id})
        assert revoked.status_code == 200
        started = time.monotonic()
        while (await list_tools(http, tokens["access_token"], other)).status_code == 200:
            assert time.monotonic() - started < 1.0, "the other replica still accepts a revoked token after 1 s"
            await asyncio.sleep(0.05)
        assert (await list_tools(http, tokens["access_token"], f"{first.url}/mcp/v1/connect")).status_code == 401
    # The two answered requests were counted on the grant (written within the verifier's flush interval).
    deadline = time.monotonic() + 15
    count = 0
    while time.monotonic() < deadline:
        async with db_factory() as db:
            grant = await db.scalar(select(OAuthGrant).where(OAuthGrant.tenant_id == flow.tenant_id))
        assert grant is not None
        count = grant.request_count
        if count >= 1 and grant.last_used_at is not None:
            break
        await asyncio.sleep(0.25)
    assert count >= 1


class _Storage:
    """The SDK's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_the_sdk_oauth_client_discovers_registers_consents_and_refreshes(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    server = two_servers[0]
    url = f"{server.url}/mcp/v1/connect"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as browser:
        await new_flow(browser, db_factory, base=server.url)  # a person signed in on `browser`
        redirected: list[str] = []

        async def open_in_browser(authorization_url: str) -> None:
            """What the person does: the consent page (signed in already), Allow with the preselected scopes."""
            assert authorization_url.startswith(f"{server.url}/oauth/authorize?")
            page = await browser.get(authorization_url)
            assert page.status_code == 200, page.text
            assert "SDK test client" in page.text and 'data-testid="unverified"' in page.text
            answer = await post_form(browser, "/oauth/authorize", [*consent_form(page.text), ("decision", "allow")])
            assert answer.status_code == 303, answer.text
            redirected.append(answer.headers["location"])

        async def callback() -> AuthorizationCodeResult:
            back = query_of(redirected[-1])
            assert redirected[-1].startswith(REDIRECT)
            return AuthorizationCodeResult(code=back["code"], state=back.get("state"), iss=back.get("iss"))

        storage = _Storage()
        provider = OAuthClientProvider(
            server_url=url,
            client_metadata=OAuthClientMetadata(
                client_name="SDK test client",
                redirect_uris=[AnyUrl(REDIRECT)],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=storage,
            redirect_handler=open_in_browser,
            callback_handler=callback,
        )
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, client_info=Implementation(name="sdk-oauth-test", version="1")) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert "list_prompts" in tools and "create_prompt" not in tools  # read-only preselected
                listed = await client.call_tool("list_prompts", {})
                assert not listed.is_error
                assert storage.client is not None and storage.client.client_id.startswith("vibexp-client-")
                assert storage.tokens is not None
                first_access = storage.tokens.access_token
                assert len(redirected) == 1

                # The client's clock says the access token expired: it refreshes (rotation), no new consent.
                provider.context.token_expiry_time = time.time() - 1
                again = await client.call_tool("list_prompts", {})
                assert not again.is_error
                assert storage.tokens.access_token != first_access
                assert len(redirected) == 1
    assert urlsplit(redirected[0]).hostname == "127.0.0.1"
