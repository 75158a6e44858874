"""Change notifications on ``subscriptions/listen`` (``vibexp.api.mcp.live``), with the official SDK client over
real HTTP against two ``vibexp serve`` processes on one database (two replicas): an edit made through the REST API
of one process reaches a client listening on the other within 2 s (prompts and resources list changed,
``resources/updated`` for a subscribed artifact, tools list changed when the key's scopes change); a listener hears
only its own account and only what its key may read; the caps refuse with a clear error, an idle stream ends
gracefully, and streams whose clients vanish give their slots back.

The latency (median and worst of 20 edits) and the server's memory per open listener are printed (``-s``) for the
report; the test fails if any edit takes longer than 2 s.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client.subscriptions import Subscription
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ResourceUpdated, ToolsListChanged
from mcp_types import CLIENT_CAPABILITIES_META_KEY, PROTOCOL_VERSION_META_KEY
from mcpkit import CAPPED_IDLE_SECONDS, MCP_PATH, connect, mcp_errors
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.servers import LiveServer
from vibexp.api.mcp.live import TOO_MANY_LISTENERS
from vibexp.core.access import Caller
from vibexp.core.db import session_scope
from vibexp.core.keys import usecases as keys

pytestmark = pytest.mark.slow

DEADLINE = 2.0
MODERN = "2026-07-28"
EDITS = 20
#: The capped server's idle time: long enough that no stream of the caps test (a few seconds) idles out.
IDLE_SECONDS = CAPPED_IDLE_SECONDS


async def _next(subscription: Subscription, timeout: float = DEADLINE) -> Any:
    async with asyncio.timeout(timeout):
        return await subscription.__anext__()


async def _silent(subscription: Subscription, seconds: float) -> None:
    """Nothing arrives on ``subscription`` for ``seconds``."""
    with pytest.raises(TimeoutError):
        event = await _next(subscription, seconds)
        pytest.fail(f"heard {event}")


@asynccontextmanager
async def raw_listen(url: str, key: str, request_id: int = 1) -> AsyncIterator[httpx.Response]:
    """A bare ``subscriptions/listen`` POST whose acknowledgement has arrived; closing it drops the connection."""
    meta = {PROTOCOL_VERSION_META_KEY: MODERN, CLIENT_CAPABILITIES_META_KEY: {}}
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "subscriptions/listen",
        "params": {"notifications": {"promptsListChanged": True}, "_meta": meta},
    }
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        MCP_PROTOCOL_VERSION_HEADER: MODERN,
        MCP_METHOD_HEADER: "subscriptions/listen",
    }
    async with httpx.AsyncClient(timeout=30) as http, http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        async with asyncio.timeout(10):
            async for line in lines:
                if line.startswith("data:"):
                    assert json.loads(line[5:])["method"] == "notifications/subscriptions/acknowledged"
                    break
        yield response


async def _refusal(url: str, key: str) -> dict[str, Any]:
    """The JSON-RPC error a listen request gets (the caps answer before any stream)."""
    meta = {PROTOCOL_VERSION_META_KEY: MODERN, CLIENT_CAPABILITIES_META_KEY: {}}
    body = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "subscriptions/listen",
        "params": {"notifications": {"promptsListChanged": True}, "_meta": meta},
    }
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json, text/event-stream",
        MCP_PROTOCOL_VERSION_HEADER: MODERN,
        MCP_METHOD_HEADER: "subscriptions/listen",
    }
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(url, json=body, headers=headers)
    error: dict[str, Any] = answer.json()["error"]
    return error


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_an_edit_through_another_process_reaches_the_listener_within_two_seconds(
    two_servers: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    listening, editing = two_servers
    account = await make_account(db)
    uri = "artifact://web/notes"
    async with httpx.AsyncClient(base_url=editing.url, headers=account.headers, timeout=30) as rest:
        made = await rest.post(
            "/api/v1/artifacts", json={"project": "web", "slug": "notes", "title": "n", "content": "x"}
        )
        assert made.status_code == 201, made.text
        async with connect(listening.url + MCP_PATH, account.key) as client:
            assert client.protocol_version == MODERN
            async with client.listen(
                prompts_list_changed=True, resources_list_changed=True, resource_subscriptions=[uri]
            ) as subscription:
                latencies = []
                for n in range(EDITS):
                    started = time.monotonic()
                    answer = await rest.post("/api/v1/prompts", json={"name": f"p{n}", "content": "Hi {{who}}"})
                    assert answer.status_code == 201, answer.text
                    assert isinstance(await _next(subscription), PromptsListChanged)
                    latencies.append(time.monotonic() - started)
                # The client sees the new prompts when it lists again.
                listed = {p.name for p in (await client.list_prompts()).prompts}
                assert {f"p{n}" for n in range(EDITS)} <= listed

                answer = await rest.put("/api/v1/artifacts/web/notes", json={"content": "changed"})
                assert answer.status_code == 200, answer.text
                heard = {type(await _next(subscription)), type(await _next(subscription))}
                assert heard == {ResourcesListChanged, ResourceUpdated}

                deleted = await rest.delete("/api/v1/artifacts/web/notes")
                assert deleted.status_code == 204
                heard = {type(await _next(subscription)), type(await _next(subscription))}
                assert heard == {ResourcesListChanged, ResourceUpdated}
    print(
        f"\n[{database_url.split(':')[0]}] list-changed across processes, {EDITS} REST edits: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, worst {max(latencies) * 1000:.0f} ms"
    )
    assert max(latencies) < DEADLINE


async def test_a_listener_hears_only_its_account_and_what_its_key_may_read(
    two_servers: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession]
) -> None:
    listening, editing = two_servers
    mine, other = await make_account(db), await make_account(db)
    owner = Caller.cli(mine.tenant.id)
    async with httpx.AsyncClient(base_url=editing.url, timeout=30) as rest:  # my second key: memories only
        made = await rest.post(
            "/api/v1/api-keys", json={"name": "narrow", "scopes": ["memories:read"]}, headers=mine.headers
        )
        assert made.status_code == 201, made.text
        narrow, narrow_key = made.json()["id"], made.json()["key"]
    async with (
        httpx.AsyncClient(base_url=editing.url, timeout=30) as rest,
        connect(listening.url + MCP_PATH, mine.key) as client,
        connect(listening.url + MCP_PATH, narrow_key) as narrow_client,
        client.listen(prompts_list_changed=True, resources_list_changed=True) as subscription,
        narrow_client.listen(
            prompts_list_changed=True, resources_list_changed=True, tools_list_changed=True
        ) as narrow_subscription,
    ):
        # Another account's edit: nobody here hears it.
        answer = await rest.post("/api/v1/prompts", json={"name": "theirs", "content": "x"}, headers=other.headers)
        assert answer.status_code == 201
        await _silent(subscription, 1.0)
        # My edit: my full key hears it; my memories-only key does not (it may not read prompts).
        answer = await rest.post("/api/v1/prompts", json={"name": "mine", "content": "x"}, headers=mine.headers)
        assert answer.status_code == 201
        assert isinstance(await _next(subscription), PromptsListChanged)
        await _silent(narrow_subscription, 1.0)
        # The narrow key is given prompts:read: its tools and prompt list changed, and now it hears prompt edits.
        async with session_scope(db, write=True) as session:
            await keys.set_permissions(
                session, caller=owner, key_id=narrow, scopes=["memories:read", "prompts:read"], allowed_cidrs=[]
            )
        heard = {type(await _next(narrow_subscription)), type(await _next(narrow_subscription))}
        assert heard == {ToolsListChanged, PromptsListChanged}
        answer = await rest.post("/api/v1/prompts", json={"name": "mine2", "content": "x"}, headers=mine.headers)
        assert answer.status_code == 201
        assert isinstance(await _next(narrow_subscription), PromptsListChanged)
        # Revoked: its stream ends (gracefully: the loop stops).
        async with session_scope(db, write=True) as session:
            await keys.revoke(session, caller=owner, key_id=narrow)
        async with asyncio.timeout(DEADLINE + 1):
            assert [event async for event in narrow_subscription] == []


async def test_the_caps_refuse_clearly_and_vanished_clients_give_their_slots_back(
    capped: LiveServer, db: async_sessionmaker[AsyncSession]
) -> None:
    url = capped.url + MCP_PATH
    first, second = await make_account(db), await make_account(db)
    for _round in range(3):  # each round the clients vanish (connections dropped); the slots must come back
        async with raw_listen(url, first.key), raw_listen(url, first.key, 2):
            refused = await _refusal(url, first.key)
            assert refused["code"] == TOO_MANY_LISTENERS, refused
            assert refused["data"]["code"] == "too_many_listeners"
            assert "already has 2 open listen streams" in refused["message"]
            async with raw_listen(url, second.key):
                refused = await _refusal(url, second.key)  # the process's cap: 3
                assert refused["code"] == TOO_MANY_LISTENERS and "This server already has 3" in refused["message"]
        await asyncio.sleep(1.0)  # the server notices the dropped connections
    async with connect(url, first.key) as client, client.listen(prompts_list_changed=True) as subscription:
        assert subscription.honored.prompts_list_changed


async def test_an_idle_stream_ends_gracefully(capped: LiveServer, db: async_sessionmaker[AsyncSession]) -> None:
    account = await make_account(db)
    async with connect(capped.url + MCP_PATH, account.key) as client:
        started = time.monotonic()
        async with client.listen(tools_list_changed=True) as subscription:
            async with asyncio.timeout(IDLE_SECONDS + 10):
                assert [event async for event in subscription] == []
        assert IDLE_SECONDS - 1 < time.monotonic() - started < IDLE_SECONDS + 10


async def test_too_many_resource_subscriptions_are_refused(
    capped: LiveServer, db: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db)
    async with connect(capped.url + MCP_PATH, account.key) as client:
        with pytest.raises(BaseException) as refused:
            async with client.listen(resource_subscriptions=[f"artifact://p/s{n}" for n in range(1001)]):
                pytest.fail("acknowledged")
        errors = mcp_errors(refused.value)
        assert errors and "At most 1000 resource subscriptions" in errors[0].error.message


async def test_memory_per_listener(
    two_servers: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession]
) -> None:
    """50 open listeners (10 keys x 5) on one process: the growth of its resident memory, per listener."""
    listening, _ = two_servers
    url = listening.url + MCP_PATH
    accounts = [await make_account(db) for _ in range(10)]
    async with raw_listen(url, accounts[0].key):  # warm: the first stream loads what every stream uses
        pass
    await asyncio.sleep(0.3)
    before = _rss_kib(listening.pid)
    async with AsyncExitStack() as stack:
        for account in accounts:
            for n in range(5):
                await stack.enter_async_context(raw_listen(url, account.key, n + 1))
        await asyncio.sleep(0.3)
        after = _rss_kib(listening.pid)
    per = (after - before) / 50
    print(f"\nserver RSS {before} -> {after} KiB with 50 listeners: {per:.1f} KiB per listener")
    assert per < 256
