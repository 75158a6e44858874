"""Usage that shows what the agent did: "recent actions" are tool calls and prompt/resource reads, not protocol
set-up (``initialize``, notifications, listings, the ``GET`` event stream), and the client is recognised by its
``clientInfo.name`` (Claude Code, Claude Desktop, Cursor, VS Code, MCP Inspector) even on the handshake-era protocol,
where a stateless server hears the name only at ``initialize``; a key used by two clients shows both.

With the real MCP Inspector CLI (tests/clients) and the official SDK client, over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mcpkit import connect, ok
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_mcp_real_clients import Clients, InspectorCli, Key, scoped_key

from helpers.factories import Account
from vibexp.api.mcp.context import mcp_action
from vibexp.core.usage.actions import SETUP_PREFIX, is_shown
from vibexp.core.usage.models import KeyAction
from vibexp.core.usage.tool_type import MCP_CLIENTS, ToolType, detect_tool_type

#: What each known client sends as ``clientInfo.name`` (and, for two, in its User-Agent).
CLIENT_NAMES = {
    "claude-code": ToolType.claude_code,
    "claude-ai": ToolType.claude_desktop,
    "cursor-vscode": ToolType.cursor,
    "Visual Studio Code": ToolType.vscode,
    "mcp-inspector": ToolType.mcp_inspector,
}


def test_every_known_client_is_recognised_by_its_name() -> None:
    assert {name: detect_tool_type(name) for name in CLIENT_NAMES} == CLIENT_NAMES
    assert set(MCP_CLIENTS) == set(CLIENT_NAMES.values())  # the one table, tied
    assert detect_tool_type("Visual Studio Code - Insiders") is ToolType.vscode
    assert detect_tool_type("some-new-agent") is ToolType.other


@pytest.mark.parametrize(
    ("message", "action"),
    [
        ({"method": "initialize", "params": {}}, "mcp:initialize"),
        ({"method": "notifications/initialized"}, "mcp:notifications/initialized"),
        ({"method": "tools/list"}, "mcp:tools/list"),
        ({"method": "ping"}, "mcp:ping"),
        ({"method": "tools/call", "params": {"name": "save_memory"}}, "save_memory"),
        ({"method": "prompts/get", "params": {"name": "x"}}, "prompts/get"),
        ({"method": "resources/read", "params": {"uri": "artifact://p/s"}}, "resources/read"),
        ({"method": "tools/call", "params": {"name": ""}}, "mcp:tools/call"),
    ],
)
def test_which_mcp_requests_are_actions(message: dict[str, Any], action: str) -> None:
    recorded = mcp_action(json.dumps({"jsonrpc": "2.0", "id": 1, **message}).encode())
    assert recorded == action
    assert is_shown(action) == (not action.startswith(SETUP_PREFIX))


async def _rows(db: async_sessionmaker[AsyncSession], key_id: str) -> list[KeyAction]:
    async with db() as session:
        query = select(KeyAction).where(KeyAction.key_id == key_id).order_by(KeyAction.id)
        return list(await session.scalars(query))


async def _wait(
    db: async_sessionmaker[AsyncSession], key_id: str, done: Callable[[list[KeyAction]], bool]
) -> list[KeyAction]:
    deadline = time.monotonic() + 10
    while True:
        rows = await _rows(db, key_id)
        if done(rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def _usage(rest: httpx.AsyncClient, account: Account, key_id: str) -> dict[str, Any]:
    response = await rest.get(f"/api/v1/api-keys/{key_id}/usage?limit=100", headers=account.headers)
    assert response.status_code == 200, response.text
    usage: dict[str, Any] = response.json()
    return usage


@pytest.fixture
async def inspector_key(db: async_sessionmaker[AsyncSession], account: Account) -> Key:
    return await scoped_key(db, account, "Inspector", ["*"])


async def test_an_inspector_call_is_one_action_by_the_mcp_inspector(
    tmp_path: Any,
    mcp_url: str,
    account: Account,
    inspector_key: Key,
    db: async_sessionmaker[AsyncSession],
    rest: httpx.AsyncClient,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    inspector = InspectorCli(Clients(home, secrets=[account.key, inspector_key.plaintext]), mcp_url)
    args = ("--tool-name", "save_memory", "--tool-arg", "content=inspected")
    await inspector.result(inspector_key.plaintext, "tools/call", *args)
    await inspector.result(inspector_key.plaintext, "tools/list")
    # Every request is recorded (the key's request count, the charts) ...
    rows = await _wait(db, inspector_key.id, lambda r: any(a.action == "mcp:tools/list" for a in r))
    recorded = [(a.action, a.status) for a in rows]
    assert ("mcp:initialize", 200) in recorded and ("save_memory", 200) in recorded, recorded
    # The Inspector's handshake: initialize, notifications/initialized, a tools/list, then the call; and the GET
    # event stream it opened after the handshake, one request recorded when it ends (the client went away), not
    # one per keep-alive: one call was five recorded requests, all "recent actions".
    call = recorded[: recorded.index(("save_memory", 200)) + 1]
    assert call == [
        ("mcp:initialize", 200),
        ("mcp:notifications/initialized", 202),
        ("mcp:tools/list", 200),
        ("save_memory", 200),
    ], recorded
    assert ("mcp:GET", 200) in recorded and ("mcp:GET", 405) not in recorded, recorded
    # ... but the recent actions are what the agent did: one tool call, by the MCP Inspector.
    usage = await _usage(rest, account, inspector_key.id)
    assert [(a["action"], a["status"], a["tool_type"]) for a in usage["actions"]] == [
        ("save_memory", 200, "mcp_inspector")
    ], usage["actions"]
    # The key's request count is its recorded requests: the second Inspector's GET stream is recorded when it ends,
    # which may be after the rows above were read, so both are read again until they agree (a few seconds at most).
    deadline = time.monotonic() + 10
    while usage["request_count"] != len(rows) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        rows = await _rows(db, inspector_key.id)
        usage = await _usage(rest, account, inspector_key.id)
    assert usage["request_count"] == len(rows) > 1
    assert [c["tool_type"] for c in usage["clients"]] == ["mcp_inspector"], usage["clients"]
    # Set-up requests are tagged with the client too (it named itself at initialize).
    assert {a.tool_type for a in rows} == {"mcp_inspector"}, [(a.action, a.tool_type) for a in rows]


async def test_a_key_shared_by_two_clients_shows_both(
    mcp_url: str, account: Account, db: async_sessionmaker[AsyncSession], rest: httpx.AsyncClient
) -> None:
    key = await scoped_key(db, account, "shared", ["*"])
    laptop = {"User-Agent": "node (laptop)"}
    desktop = {"User-Agent": "python-httpx/0.28 (desktop)"}
    async with (
        connect(mcp_url, key.plaintext, client_name="claude-code", mode="legacy", headers=laptop) as claude,
        connect(mcp_url, key.plaintext, client_name="cursor-vscode", mode="legacy", headers=desktop) as cursor,
    ):
        # Interleaved, after both initialized: each later request (no clientInfo) is still its own client's.
        await ok(claude, "save_memory", {"content": "from claude"})
        await ok(cursor, "save_memory", {"content": "from cursor"})
        await ok(claude, "list_memories", {})
    rows = await _wait(db, key.id, lambda r: sum(a.action in ("save_memory", "list_memories") for a in r) == 3)
    tagged = [(a.action, a.tool_type) for a in rows if is_shown(a.action)]
    assert tagged == [("save_memory", "claude_code"), ("save_memory", "cursor"), ("list_memories", "claude_code")]
    usage = await _usage(rest, account, key.id)
    assert {c["tool_type"] for c in usage["clients"]} == {"claude_code", "cursor"}, usage["clients"]
    assert usage["clients"][0]["tool_type"] == "claude_code"  # the most recent first
    async with db() as session:
        total = await session.scalar(select(func.count()).select_from(KeyAction).where(KeyAction.key_id == key.id))
    assert sum(c["requests"] for c in usage["clients"]) == total


async def test_prompt_and_resource_reads_are_actions(
    mcp_url: str, account: Account, db: async_sessionmaker[AsyncSession], rest: httpx.AsyncClient
) -> None:
    key = await scoped_key(db, account, "reader", ["*"])
    async with connect(mcp_url, key.plaintext, client_name="Visual Studio Code") as mcp:
        await ok(mcp, "create_prompt", {"name": "hello", "content": "hi"})
        await ok(mcp, "save_artifact", {"project": "p", "slug": "s", "content": "c"})
        await mcp.list_prompts()
        await mcp.get_prompt("hello")
        await mcp.read_resource("artifact://p/s")
    await _wait(db, key.id, lambda r: any(a.action == "resources/read" for a in r))
    usage = await _usage(rest, account, key.id)
    shown = [(a["action"], a["tool_type"]) for a in reversed(usage["actions"])]
    assert shown == [
        ("create_prompt", "vscode"),
        ("save_artifact", "vscode"),
        ("prompts/get", "vscode"),
        ("resources/read", "vscode"),
    ], shown
