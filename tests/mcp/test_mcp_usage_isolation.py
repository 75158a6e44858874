"""Usage tracking of MCP calls (tool name as action, client as tool type) and tenant isolation between two
concurrent sessions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from mcpkit import connect, ok, tool_error
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account


async def usage_actions(rest: httpx.AsyncClient, account: Account, want: int) -> dict[str, Any]:
    """The key's usage once at least ``want`` actions are recorded (the recorder flushes in the background)."""
    deadline = time.monotonic() + 10
    while True:
        resp = await rest.get(f"/api/v1/api-keys/{account.key_id}/usage?limit=100", headers=account.headers)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        mcp_actions = [a for a in body["actions"] if a["route"] == "/mcp/v1/common"]
        if len(mcp_actions) >= want or time.monotonic() > deadline:
            return {**body, "mcp_actions": mcp_actions}
        await asyncio.sleep(0.1)


async def test_usage_records_tool_names_and_the_client(mcp_url: str, account: Account, rest: httpx.AsyncClient) -> None:
    # The handshake-era protocol (what Claude Code, Cursor and VS Code speak today): clientInfo only on initialize,
    # remembered for the key's later requests when their User-Agent says nothing recognisable.
    unknown_agent = {"User-Agent": "some-editor/1.0"}
    async with connect(mcp_url, account.key, client_name="claude-code", mode="legacy", headers=unknown_agent) as mcp:
        await ok(mcp, "save_memory", {"content": "remember me"})
        await ok(mcp, "search_memories", {"query": "remember"})
        await mcp.list_prompts()
    usage = await usage_actions(rest, account, want=2)
    actions = [a["action"] for a in reversed(usage["mcp_actions"])]  # oldest first
    # What the agent did; the set-up (initialize, notifications/initialized, prompts/list) is not an action.
    assert actions == ["save_memory", "search_memories"], actions
    assert {a["tool_type"] for a in usage["mcp_actions"]} == {"claude_code"}, usage["mcp_actions"]
    assert all(a["status"] == 200 for a in usage["mcp_actions"])
    assert "claude_code" in {c["tool_type"] for c in usage["clients"]}

    # The 2026-era protocol carries clientInfo on every request.
    async with connect(mcp_url, account.key, client_name="Visual Studio Code") as mcp:
        await ok(mcp, "list_memories", {})
    usage = await usage_actions(rest, account, want=len(usage["mcp_actions"]) + 1)
    call = next(a for a in usage["mcp_actions"] if a["action"] == "list_memories")
    assert call["tool_type"] == "vscode", usage["mcp_actions"]
    # (The REST reads of this usage, made with the same key by python-httpx, are a third client: mcp_sdk.)
    mcp_clients = [c["tool_type"] for c in usage["clients"] if c["tool_type"] != "mcp_sdk"]
    assert mcp_clients == ["vscode", "claude_code"], usage


async def test_two_tenants_in_concurrent_sessions_never_see_each_other(
    mcp_url: str, db: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob = await make_account(db), await make_account(db)
    ready = asyncio.Barrier(2)
    ids: dict[str, dict[str, str]] = {}

    async def work(me: Account, name: str) -> None:
        async with connect(mcp_url, me.key, client_name=name) as mcp:
            # The same names in both accounts: unique per tenant, not globally.
            await ok(mcp, "create_prompt", {"name": "daily", "content": f"{name}'s {{{{task}}}}"})
            await ok(mcp, "save_artifact", {"project": "notes", "slug": "todo", "content": f"{name} todo"})
            memory = await ok(mcp, "save_memory", {"content": f"{name} likes tea", "tags": ["pref"]})
            ids[name] = {"memory": memory["id"]}
            await ready.wait()  # both accounts now hold data; read while the other session is open

            got = await ok(mcp, "get_prompt", {"name": "daily", "arguments": {"task": "work"}})
            assert got["rendered"] == f"{name}'s work"
            assert (await ok(mcp, "get_artifact", {"project": "notes", "slug": "todo"}))["content"] == f"{name} todo"
            memories = (await ok(mcp, "search_memories", {"query": "likes tea"}))["items"]
            assert [m["content"] for m in memories] == [f"{name} likes tea"]
            assert [p.name for p in (await mcp.list_prompts()).prompts] == ["daily"]
            assert [r.uri for r in (await mcp.list_resources()).resources] == ["artifact://notes/todo"]
            await ready.wait()

            other = ids["bob" if name == "alice" else "alice"]["memory"]
            assert "not_found" in await tool_error(mcp, "get_memory", {"id": other})
            assert "not_found" in await tool_error(mcp, "delete_memory", {"id": other})
            assert "not_found" in await tool_error(mcp, "update_memory", {"id": other, "content": "mine now"})

    await asyncio.gather(work(alice, "alice"), work(bob, "bob"))
    # Nothing either session tried on the other's memory changed it.
    async with connect(mcp_url, bob.key) as mcp:
        assert (await ok(mcp, "get_memory", {"id": ids["bob"]["memory"]}))["content"] == "bob likes tea"
