"""One request must not blind a server: whatever a client puts in an MCP method or tool name, or in the address
it claims, the usage flush keeps counting every key's requests, and the graceful-shutdown flush loses nothing.

Before the fix a lone surrogate (both databases), a NUL or an address over 64 characters (PostgreSQL) in one usage
event failed every later flush of that process: no request counted, no last-used update, no alert detector run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account
from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from vibexp.core.keys.models import ApiKey
from vibexp.core.usage.models import KeyAction

pytestmark = pytest.mark.slow

JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

#: Raw JSON-RPC bodies: JSON escapes reach the server as a lone surrogate and a NUL once parsed.
POISON_BODIES = (
    rb'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "\ud800"}}',
    rb'{"jsonrpc": "2.0", "id": 2, "method": "\ud800", "params": {}}',
    rb'{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "list\u0000memories"}}',
    rb'{"jsonrpc": "2.0", "id": 4, "method": "tools/\u0000list", "params": {}}',
    rb'{"jsonrpc": "2.0", "id": 5, "method": "' + b"x" * 300 + rb'", "params": {}}',
)


async def _counted(factory: async_sessionmaker[AsyncSession], key_id: str) -> tuple[int, int]:
    async with factory() as session:
        key = await session.get(ApiKey, key_id)
        assert key is not None
        actions = await session.scalar(select(func.count()).select_from(KeyAction).where(KeyAction.key_id == key_id))
        return key.request_count, actions or 0


async def _wait_counted(factory: async_sessionmaker[AsyncSession], key_id: str, expected: int) -> tuple[int, int]:
    deadline = time.monotonic() + 15
    counted = await _counted(factory, key_id)
    while counted != (expected, expected) and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        counted = await _counted(factory, key_id)
    return counted


async def _poison(client: httpx.AsyncClient, account: Account) -> int:
    """Every poison request once; returns how many requests reached the key's usage."""
    sent = 0
    for body in POISON_BODIES:
        # One connection each: a request the server fails on may close its connection, and the next one sent on
        # it would never arrive.
        headers = {**account.headers, **JSONRPC_HEADERS, "Connection": "close"}
        # How MCP answers a name it cannot echo is not this test's concern (a reset connection included): the
        # request arrived.
        with contextlib.suppress(httpx.TransportError):
            await client.post("/mcp/v1/common", content=body, headers=headers)
        sent += 1
    # An address over 64 characters that the client claims for itself (loopback is no proxy here).
    response = await client.get("/api/v1/prompts", headers={**account.headers, "X-Forwarded-For": "a" * 300})
    assert response.status_code == 200, response.text
    return sent + 1


async def test_poison_requests_do_not_stop_usage_counting_or_the_shutdown_flush(
    database_url: str, db_factory: async_sessionmaker[AsyncSession], tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = LiveServer(database_url)
    start_servers([server], tmp_path_factory.mktemp("logs"))
    try:
        victim = await make_account(db_factory)
        bystander = await make_account(db_factory)  # another tenant, never sends anything odd
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            sent = await _poison(client, victim)
            for _ in range(3):
                assert (await client.get("/api/v1/prompts", headers=victim.headers)).status_code == 200
                assert (await client.get("/api/v1/prompts", headers=bystander.headers)).status_code == 200
            sent += 3
            # Counted by the periodic flush, poison requests included (their names made storable).
            assert await _wait_counted(db_factory, victim.key_id, sent) == (sent, sent)
            assert await _wait_counted(db_factory, bystander.key_id, 3) == (3, 3)
            async with db_factory() as session:
                key = await session.get(ApiKey, bystander.key_id)
                assert key is not None and key.last_used_at is not None and key.last_ip == "127.0.0.1"
            # The same again, then a graceful stop: the shutdown flush writes what is still buffered.
            sent += await _poison(client, victim)
            assert (await client.get("/api/v1/prompts", headers=bystander.headers)).status_code == 200
        server.stop()
        assert "Application shutdown complete" in server.log()  # it used to fail, losing the buffer
        assert await _counted(db_factory, victim.key_id) == (sent, sent)
        assert await _counted(db_factory, bystander.key_id) == (4, 4)
        log = server.log()
        assert "usage flush failed" not in log and "usage flush still failing" not in log
        assert victim.key not in log and bystander.key not in log
    finally:
        server.stop()
