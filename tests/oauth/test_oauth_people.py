"""A grant acts for its person and never wider than their role, checked at each request (SQLite and PostgreSQL): a
role change narrows a live token; a person removed from the account gets nothing more (the token is refused and a
refresh is ``invalid_grant``, which also revokes the grant); a suspended account's token gets 403."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.teams import PASSWORD
from oauth.flow import Flow, consent_form, new_flow, post_form, query_of
from vibexp.core.access import Caller, Role
from vibexp.core.account import update_account
from vibexp.core.db import session_scope
from vibexp.core.members import usecases as members
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.tenants.schemas import TenantUpdate

LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def _tools(flow: Flow, token: str) -> httpx.Response:
    return await flow.http.post(
        "/mcp/v1/connect", json=LIST_TOOLS, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    )


@pytest.fixture
async def flow(client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]) -> Flow:
    return await new_flow(client, session_factory)


async def test_a_role_change_narrows_a_live_token(
    flow: Flow, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    tokens = await flow.tokens(scopes=["prompts:write"])
    names = {tool["name"] for tool in (await _tools(flow, tokens["access_token"])).json()["result"]["tools"]}
    assert "create_prompt" in names
    async with session_scope(session_factory, write=True) as db:
        await members.change_role(db, caller=Caller.cli(flow.tenant_id), user_id=flow.person.user_id, role=Role.viewer)
    names = {tool["name"] for tool in (await _tools(flow, tokens["access_token"])).json()["result"]["tools"]}
    assert "list_prompts" in names and "create_prompt" not in names


async def test_a_removed_person_gets_nothing_more(
    flow: Flow, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    tokens = await flow.tokens()
    assert (await _tools(flow, tokens["access_token"])).status_code == 200
    async with session_scope(session_factory, write=True) as db:
        await members.remove(db, caller=Caller.cli(flow.tenant_id), user_id=flow.person.user_id)
    refused = await _tools(flow, tokens["access_token"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    answer = await flow.refresh(tokens["refresh_token"])
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    async with session_factory() as db:
        grant = await db.scalar(select(OAuthGrant).where(OAuthGrant.tenant_id == flow.tenant_id))
    assert grant is not None and grant.revoked_at is not None and grant.revoked_reason == "member_removed"


async def test_a_suspended_account_is_403(flow: Flow, session_factory: async_sessionmaker[AsyncSession]) -> None:
    tokens = await flow.tokens()
    async with session_scope(session_factory, write=True) as db:
        await update_account(db, caller=Caller.cli(flow.tenant_id), data=TenantUpdate(suspended=True))
    answer = await _tools(flow, tokens["access_token"])
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "account_suspended"


async def test_a_person_in_two_accounts_picks_one_and_their_role_there_bounds_the_grant(
    flow: Flow, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    other = await make_account(session_factory, name=f"second-{flow.tenant_id[:8]}")
    async with session_scope(session_factory, write=True) as db:
        invitation = await members.invite(
            db, caller=Caller.cli(other.tenant.id), email=flow.person.email, role=Role.viewer
        )
    async with session_scope(session_factory, write=True) as db:
        await members.accept_invitation(db, token=invitation.token, password=PASSWORD)
    page = await flow.authorize()
    assert 'data-testid="consent-account-picker"' in page.text
    assert f'value="{other.tenant.id}"' in page.text and f'value="{flow.tenant_id}" selected' in page.text
    form = [(name, value) for name, value in consent_form(page.text) if name != "scope"]

    async def allow(account: str, scope: str) -> httpx.Response:
        fields = [*form, ("account", account), ("scope", scope), ("decision", "allow")]
        return await post_form(flow.http, "/oauth/authorize", fields)

    # A viewer there: writing is refused (nothing issued); reading is granted in that account.
    wide = await post_form(
        flow.http,
        "/oauth/authorize",
        [*form, ("account", other.tenant.id), ("scope", "prompts:write"), ("decision", "allow")],
    )
    assert wide.status_code == 403 and "location" not in wide.headers
    answer = await post_form(
        flow.http,
        "/oauth/authorize",
        [*form, ("account", other.tenant.id), ("scope", "prompts:read"), ("decision", "allow")],
    )
    assert answer.status_code == 303, answer.text
    issued = await flow.exchange(query_of(answer.headers["location"])["code"])
    assert issued.status_code == 200 and issued.json()["scope"] == "prompts:read"
    async with session_factory() as db:
        grant = await db.scalar(select(OAuthGrant).where(OAuthGrant.tenant_id == other.tenant.id))
    assert grant is not None and grant.user_id == flow.person.user_id

    # An account the person is not in: refused.
    stranger = await make_account(session_factory)
    refused = await post_form(
        flow.http,
        "/oauth/authorize",
        [*form, ("account", stranger.tenant.id), ("scope", "prompts:read"), ("decision", "allow")],
    )
    assert refused.status_code == 403 and "location" not in refused.headers
