"""Guarantees that only hold across processes: exact shared limits, revocation reaching every replica, and
usage that survives a graceful shutdown."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.servers import LiveServer
from helpers.windows import inside_one_hour_window
from vibexp.core.keys.models import ApiKey
from vibexp.core.usage.models import KeyAction

pytestmark = pytest.mark.slow


async def _drain(client: httpx.AsyncClient, url: str, headers: dict[str, str], statuses: list[int]) -> None:
    """Send requests until this server refuses one (its lease is spent and the shared window is full)."""
    while True:
        response = await client.get(url, headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 429:
            return
        assert response.status_code == 200, response.text


async def test_two_processes_admit_exactly_the_limit_together(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    limit = 400
    await inside_one_hour_window()  # a new window mid-test would admit a second 400
    account = await make_account(db_factory, rate_limit=limit)
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        # Four concurrent clients per process, all hammering the same tenant.
        await asyncio.gather(
            *(
                _drain(client, f"{server.url}/api/v1/memories?limit=1", account.headers, statuses)
                for server in two_servers
                for _ in range(4)
            )
        )
        # Once the window is full, both processes keep refusing.
        for server in two_servers:
            refused = await client.get(f"{server.url}/api/v1/memories", headers=account.headers)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "rate_limited"
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["x-ratelimit-remaining"] == "0"
    assert statuses.count(200) == limit


async def test_revocation_reaches_the_other_process_within_one_second(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    first, second = two_servers
    account = await make_account(db_factory)
    async with httpx.AsyncClient(timeout=10) as client:
        for server in two_servers:  # warm both processes' key caches
            assert (await client.get(f"{server.url}/api/v1/prompts", headers=account.headers)).status_code == 200
        revoked = await client.delete(f"{first.url}/api/v1/api-keys/{account.key_id}", headers=account.headers)
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        started = time.monotonic()
        # The revoking process refuses at once.
        assert (await client.get(f"{first.url}/api/v1/prompts", headers=account.headers)).status_code == 401
        while True:
            response = await client.get(f"{second.url}/api/v1/prompts", headers=account.headers)
            if response.status_code == 401:
                break
            assert response.status_code == 200
            assert time.monotonic() - started < 1.0, "the other process still accepts the revoked key after 1 s"
            await asyncio.sleep(0.01)
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert "revoked" in response.json()["error"]["message"]


async def test_graceful_shutdown_loses_no_usage(
    database_url: str,
    db_factory: async_sessionmaker[AsyncSession],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    account = await make_account(db_factory)
    # Stop right after the last request: whatever the flusher had not written yet must be written at shutdown.
    server = LiveServer(database_url).start(tmp_path_factory.mktemp("logs"))
    requests = 60
    try:
        async with httpx.AsyncClient(timeout=10, headers={"User-Agent": "curl/8.5.0"}) as client:
            for _ in range(requests):
                response = await client.get(f"{server.url}/api/v1/prompts", headers=account.headers)
                assert response.status_code == 200
    finally:
        # uvicorn re-raises the SIGTERM after its graceful shutdown, so -15 is the normal exit status.
        assert server.stop() in (0, -15)
    assert "Application shutdown complete" in server.log()
    async with db_factory() as session:
        key = await session.get(ApiKey, account.key_id)
        assert key is not None
        assert key.request_count == requests
        assert key.tool_type == "curl"
        assert key.last_used_at is not None
        logged = await session.scalar(select(func.count()).select_from(KeyAction).where(KeyAction.key_id == key.id))
        assert logged == requests
