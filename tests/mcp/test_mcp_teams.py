"""MCP follows the person's role, live (DESIGN "Teams": a personal key acts within its owner's role ceiling, and a
role change or a removal reaches every replica within 1 s): the official SDK client over real HTTP against two
``vibexp serve`` processes on one database. The role is changed through the REST API of the first process; the
second is asked until it follows.

* tools/list on the other process loses the write tools within 1 s of a demotion (member → viewer), a write tool is
  then refused with ``insufficient_scope``, and a promotion gives them back; a removal refuses the key (401 revoked).
  The times (median and worst of a few rounds) are printed (``-s``).
* A ``subscriptions/listen`` stream on the key hears ``notifications/tools/list_changed`` when its owner is demoted
  or promoted (the key's own scopes did not change: its effective ones did), keeps hearing what the new role may
  read, and ends when its owner is removed.
* A stream ends at its key's ``expires_at`` (not at the idle close, 600 s), and the next request is refused; and
  when its account is suspended (what deleting a ``VibeXPTenant`` does).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from mcp.client.caching import CacheMode
from mcp.client.subscriptions import Subscription
from mcp.shared.subscriptions import PromptsListChanged, ToolsListChanged
from mcpkit import MCP_PATH, READ_TOOLS, connect, mcp_errors, ok, tool_error
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.servers import LiveServer
from helpers.teams import make_person
from mcp import Client
from vibexp.api.mcp.tools import TOOL_NAMES
from vibexp.core import account as accounts
from vibexp.core.access import Caller, Role
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys import usecases as keys
from vibexp.core.keys.usecases import KeyPermissions
from vibexp.core.tenants.schemas import TenantUpdate

pytestmark = pytest.mark.slow

#: DESIGN "Teams": a role change or a removal reaches every replica within this.
DEADLINE = 1.0
ROUNDS = 3
ALL_TOOLS = set(TOOL_NAMES)
VIEWER_TOOLS = set(READ_TOOLS)
JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


async def _tools(client: Client, cache_mode: CacheMode = "refresh") -> set[str]:
    """The tools the server lists now (``refresh``: the SDK client keeps a list for its ``ttlMs``, 60 s, unless a
    ``tools/list_changed`` evicts it; ``use`` reads that cache)."""
    return {tool.name for tool in (await client.list_tools(cache_mode=cache_mode)).tools}


async def _until_tools(client: Client, wanted: set[str], started: float, cache_mode: CacheMode = "refresh") -> float:
    """Ask tools/list until it is ``wanted``; the seconds since ``started`` until that answer came. It fails when a
    question asked ``DEADLINE`` or more after ``started`` still got the old answer: the moment a request is sent is
    what the server's state is measured at (on a busy machine the answer itself may take a while to come back)."""
    while True:
        asked = time.monotonic()
        listed = await _tools(client, cache_mode)
        if listed == wanted:
            return time.monotonic() - started
        assert asked - started < DEADLINE, f"tools/list asked {asked - started:.2f} s after: {sorted(listed)}"
        await asyncio.sleep(0.005)


async def _until_refused(client: Client, started: float) -> float:
    """Ask tools/list until the server refuses the key; the seconds since ``started`` (failing as ``_until_tools``
    does). (The SDK turns the 401 into a generic MCPError, "Server returned an error response": the caller checks the
    refusal's body itself.)"""
    while True:
        asked = time.monotonic()
        try:
            await client.list_tools(cache_mode="refresh")
        except Exception as exc:  # the SDK raises the server's refusal (an MCPError, maybe in an exception group)
            assert mcp_errors(exc), repr(exc)
            return time.monotonic() - started
        assert asked - started < DEADLINE, f"the key is still served {asked - started:.2f} s after"
        await asyncio.sleep(0.005)


def _report(database_url: str, times: dict[str, list[float]]) -> None:
    for what, seconds in times.items():
        print(
            f"\n[{database_url.split(':')[0]}] MCP {what} reached the other process: "
            f"median {statistics.median(seconds) * 1000:.0f} ms, worst {max(seconds) * 1000:.0f} ms "
            f"over {len(seconds)}"
        )


async def _set_role(rest: httpx.AsyncClient, user_id: str, role: Role) -> None:
    changed = await rest.patch(f"/api/v1/members/{user_id}", json={"role": role.value})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == role.value


async def _key_refused_as(server: LiveServer, key: str, word: str) -> None:
    """A bare tools/list with ``key`` is refused: 401 ``invalid_api_key``, the message naming ``word``. Asked until
    then for up to ``DEADLINE``: a stream that ended follows the change feed, requests the key cache, and each polls
    on its own."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        while True:
            asked = time.monotonic()
            answer = await http.post(
                MCP_PATH, json=TOOLS_LIST, headers={**JSONRPC_HEADERS, "Authorization": f"Bearer {key}"}
            )
            if answer.status_code != 200 or asked - started >= DEADLINE:
                break
            await asyncio.sleep(0.02)
    assert answer.status_code == 401, answer.text[:300]
    error = answer.json()["error"]
    assert error["code"] == "invalid_api_key" and word in error["message"].lower(), error


async def test_a_demotion_narrows_the_tools_on_the_other_process_within_one_second(
    two_servers: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    changing, serving = two_servers
    account = await make_account(db)
    times: dict[str, list[float]] = {"demotion": [], "promotion": [], "removal": []}
    async with httpx.AsyncClient(base_url=changing.url, headers=account.headers, timeout=30) as rest:
        member = await make_person(db, tenant_id=account.tenant.id, role=Role.member)
        async with connect(serving.url + MCP_PATH, member.key) as mcp:
            for n in range(ROUNDS):
                assert await _tools(mcp) == ALL_TOOLS
                await ok(mcp, "save_memory", {"content": f"round {n}"})
                await _set_role(rest, member.user_id, Role.viewer)
                started = time.monotonic()
                times["demotion"].append(await _until_tools(mcp, VIEWER_TOOLS, started))
                refused = await tool_error(mcp, "save_memory", {"content": "as a viewer"})
                assert refused.startswith("insufficient_scope:") and "memories:write" in refused, refused
                # The viewer still reads, and the refused save wrote nothing.
                memories = (await ok(mcp, "list_memories", {}))["items"]
                assert sorted(m["content"] for m in memories) == [f"round {k}" for k in range(n + 1)]
                await _set_role(rest, member.user_id, Role.member)
                times["promotion"].append(await _until_tools(mcp, ALL_TOOLS, time.monotonic()))
        for _ in range(ROUNDS):
            leaving = await make_person(db, tenant_id=account.tenant.id, role=Role.member)
            async with connect(serving.url + MCP_PATH, leaving.key) as mcp:
                assert await _tools(mcp) == ALL_TOOLS
                removed = await rest.delete(f"/api/v1/members/{leaving.user_id}")
                assert removed.status_code == 204, removed.text
                times["removal"].append(await _until_refused(mcp, time.monotonic()))
            await _key_refused_as(serving, leaving.key, "revoked")  # 401 invalid_api_key, "…has been revoked…"
    _report(database_url, times)


async def _next(subscription: Subscription, timeout: float = DEADLINE + 1) -> Any:
    async with asyncio.timeout(timeout):
        return await subscription.__anext__()


async def _ends(subscription: Subscription, timeout: float) -> None:
    """The stream ends (gracefully) within ``timeout`` seconds, with nothing more to say."""
    async with asyncio.timeout(timeout):
        assert [event async for event in subscription] == []


async def test_a_listening_stream_follows_its_owners_role_and_ends_when_they_leave(
    two_servers: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession]
) -> None:
    listening, changing = two_servers
    account = await make_account(db)
    admin = await make_person(db, tenant_id=account.tenant.id, role=Role.admin)  # their key: "*"
    async with (
        httpx.AsyncClient(base_url=changing.url, headers=account.headers, timeout=30) as rest,
        connect(listening.url + MCP_PATH, admin.key) as mcp,
        mcp.listen(tools_list_changed=True, prompts_list_changed=True) as subscription,
    ):
        assert await _tools(mcp, "use") == ALL_TOOLS  # the client keeps this list for 60 s, unless told
        # Demoted to viewer: the key's scopes are still "*", but what it may do is a viewer's. The notification
        # evicts the client's list: the next tools/list asks the server again.
        await _set_role(rest, admin.user_id, Role.viewer)
        assert isinstance(await _next(subscription), ToolsListChanged)
        await _until_tools(mcp, VIEWER_TOOLS, time.monotonic(), "use")
        # A viewer still reads prompts: the stream still hears of them.
        made = await rest.post("/api/v1/prompts", json={"name": "still-heard", "content": "x"})
        assert made.status_code == 201, made.text
        assert isinstance(await _next(subscription), PromptsListChanged)
        # Promoted back: the write tools return, and the stream is told.
        await _set_role(rest, admin.user_id, Role.admin)
        assert isinstance(await _next(subscription), ToolsListChanged)
        await _until_tools(mcp, ALL_TOOLS, time.monotonic(), "use")
        # Removed from the account (their keys revoked): the stream ends.
        removed = await rest.delete(f"/api/v1/members/{admin.user_id}")
        assert removed.status_code == 204, removed.text
        await _ends(subscription, DEADLINE + 1)
    await _key_refused_as(listening, admin.key, "revoked")


async def _expiring_key(db: async_sessionmaker[AsyncSession], tenant_id: str, seconds: float) -> str:
    async with session_scope(db, write=True) as session:
        new = await keys.create(
            session,
            caller=Caller.cli(tenant_id),
            name="expiring",
            description="",
            permissions=KeyPermissions(expires_at=utcnow() + timedelta(seconds=seconds)),
            source="cli",
        )
        assert new.record.expires_at is not None
        return new.plaintext


async def test_a_stream_ends_when_its_key_expires(server: LiveServer, db: async_sessionmaker[AsyncSession]) -> None:
    account = await make_account(db)
    key = await _expiring_key(db, account.tenant.id, 3.0)
    expires = utcnow() + timedelta(seconds=3.0)  # a moment after the key's own expires_at
    async with connect(server.url + MCP_PATH, key) as mcp:
        async with mcp.listen(tools_list_changed=True, prompts_list_changed=True) as subscription:
            left = (expires - utcnow()).total_seconds()
            assert left > 1.0, "the client took too long to connect for this test to mean anything"
            started = time.monotonic()
            await _ends(subscription, left + 2.0)  # the idle close is 600 s away
            ended = time.monotonic() - started
        assert left - 1.0 < ended < left + 1.0, (left, ended)
    await _key_refused_as(server, key, "expired")


async def test_a_stream_ends_when_its_account_is_suspended(
    two_servers: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession]
) -> None:
    listening, _ = two_servers
    account = await make_account(db)
    async with (
        connect(listening.url + MCP_PATH, account.key) as mcp,
        mcp.listen(tools_list_changed=True, prompts_list_changed=True) as subscription,
    ):
        async with session_scope(db, write=True) as session:  # the CLI's `tenant update --suspend`
            await accounts.update_account(
                session, caller=Caller.cli(account.tenant.id), data=TenantUpdate(suspended=True)
            )
        suspended = time.monotonic()
        await _ends(subscription, DEADLINE + 1)
    # The stream follows the change feed, requests the key cache: each polls on its own, and a request sent a second
    # after the suspension is refused (as _until_tools measures it).
    async with httpx.AsyncClient(base_url=listening.url, timeout=30) as http:
        while True:
            asked = time.monotonic()
            answer = await http.post(MCP_PATH, json=TOOLS_LIST, headers={**JSONRPC_HEADERS, **account.headers})
            if answer.status_code != 200 or asked - suspended >= DEADLINE:
                break
            await asyncio.sleep(0.02)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "account_suspended", answer.text[:300]
