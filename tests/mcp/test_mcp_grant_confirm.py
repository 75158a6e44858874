"""A connected app (OAuth grant) with ``confirm_destructive``, over real HTTP on ``/mcp/v1/connect`` with the
official SDK client, as ``test_mcp_confirm.py`` does for keys: a client that declares form elicitation is asked
before ``delete_memory`` (accept deletes, decline changes nothing); one that declares none is not offered the
destructive tools; a grant without the setting asks nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from mcpkit import Person, connect, ok, tool_error
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.servers import LiveServer
from oauth.flow import new_flow
from vibexp.api.mcp.confirm import CONFIRMED_TOOLS
from vibexp.api.mcp.tools import TOOL_NAMES
from vibexp.core.access import Role

CONNECT = "/mcp/v1/connect"
WRITES = ["prompts:read", "prompts:write", "memories:read", "memories:write", "artifacts:read", "artifacts:write"]


@pytest.fixture
async def browser(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


async def _token(
    browser: httpx.AsyncClient, server: LiveServer, db: async_sessionmaker[AsyncSession], *, confirm: bool
) -> str:
    flow = await new_flow(browser, db, base=server.url, role=Role.member)
    tokens = await flow.tokens(scopes=WRITES, confirm_destructive=confirm)
    return tokens["access_token"]


async def test_a_confirming_grant_asks_before_deleting_and_accept_deletes(
    server: LiveServer, browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    token = await _token(browser, server, db, confirm=True)
    person = Person("accept")
    async with connect(server.url + CONNECT, token, person=person) as mcp:
        assert {t.name for t in (await mcp.list_tools()).tools} == set(TOOL_NAMES)  # it can ask: all offered
        memory = await ok(mcp, "save_memory", {"content": "the staging database is shared"})
        assert person.asked == []
        assert (await ok(mcp, "delete_memory", {"id": memory["id"]}))["deleted"] is True
        assert len(person.asked) == 1 and person.asked[0].startswith("Delete the memory")
        assert "staging database" in person.asked[0]
        assert "not_found" in (await tool_error(mcp, "get_memory", {"id": memory["id"]})).lower().replace(" ", "_")


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_a_confirming_grant_declined_changes_nothing(
    server: LiveServer, browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], action: str
) -> None:
    token = await _token(browser, server, db, confirm=True)
    person = Person(action)
    async with connect(server.url + CONNECT, token, person=person) as mcp:
        memory = await ok(mcp, "save_memory", {"content": "keep me"})
        text = await tool_error(mcp, "delete_memory", {"id": memory["id"]})
        assert text.startswith(("declined:", "cancelled:")) and "nothing was changed" in text, text
        assert (await ok(mcp, "get_memory", {"id": memory["id"]}))["content"] == "keep me"
    assert len(person.asked) == 1


async def test_a_client_that_cannot_ask_is_not_offered_the_destructive_tools(
    server: LiveServer, browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    token = await _token(browser, server, db, confirm=True)
    async with connect(server.url + CONNECT, token) as mcp:
        assert {t.name for t in (await mcp.list_tools()).tools} == set(TOOL_NAMES) - CONFIRMED_TOOLS
        memory = await ok(mcp, "save_memory", {"content": "stays"})
        text = await tool_error(mcp, "delete_memory", {"id": memory["id"]})
        assert text.startswith("confirmation_unavailable:") and "nothing was changed" in text, text
        assert (await ok(mcp, "get_memory", {"id": memory["id"]}))["content"] == "stays"


async def test_a_grant_without_the_setting_asks_nothing(
    server: LiveServer, browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    token = await _token(browser, server, db, confirm=False)
    person = Person("decline")
    async with connect(server.url + CONNECT, token, person=person) as mcp:
        memory = await ok(mcp, "save_memory", {"content": "free"})
        assert (await ok(mcp, "delete_memory", {"id": memory["id"]}))["deleted"] is True
    assert person.asked == []
