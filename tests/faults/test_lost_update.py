"""Lost updates: concurrent writers carrying the same version, spread over two server processes.

Exactly one may win (REST ``PUT`` with ``If-Match``, MCP ``expected_version``, the dashboard's form version); every
other gets 412 / a tool error, and the stored row is the winner's. A read-then-compare in Python lets several win.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import csrf_of, make_person, sign_in
from helpers.factories import make_account
from helpers.servers import LiveServer

pytestmark = pytest.mark.slow

WRITERS = 32
JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def _gather_released(count: int, attempt: Any) -> list[Any]:
    """Run ``count`` attempts that all wait at one gate, so their writes really overlap."""
    gate = asyncio.Event()

    async def one(i: int) -> Any:
        await gate.wait()
        return await attempt(i)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(0.05)
    gate.set()
    return await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)


async def test_rest_put_with_the_same_if_match_lets_exactly_one_win(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory, rate_limit=100_000)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=2 * WRITERS)) as client:
        created = await client.post(
            f"{two_servers[0].url}/api/v1/prompts", json={"name": "race", "content": "v1"}, headers=account.headers
        )
        assert created.status_code == 201 and created.headers["etag"] == '"1"'
        prompt_id = created.json()["id"]

        async def put(i: int) -> tuple[int, int]:
            server = two_servers[i % 2]
            response = await client.put(
                f"{server.url}/api/v1/prompts/{prompt_id}",
                json={"content": f"writer {i}"},
                headers={**account.headers, "If-Match": '"1"'},
            )
            return i, response.status_code

        results = await _gather_released(WRITERS, put)
        statuses = [status for _, status in results]
        assert statuses.count(200) == 1, statuses
        assert statuses.count(412) == WRITERS - 1, statuses
        winner = next(i for i, status in results if status == 200)
        for server in two_servers:
            stored = await client.get(f"{server.url}/api/v1/prompts/{prompt_id}", headers=account.headers)
            assert stored.json()["content"] == f"writer {winner}"
            assert stored.json()["version"] == 2 and stored.headers["etag"] == '"2"'


async def test_mcp_expected_version_lets_exactly_one_win(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory, rate_limit=100_000)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=2 * WRITERS)) as client:
        created = await client.post(
            f"{two_servers[0].url}/api/v1/memories", json={"content": "v1"}, headers=account.headers
        )
        memory_id = created.json()["id"]

        async def call(i: int) -> tuple[int, bool]:
            body = {
                "jsonrpc": "2.0",
                "id": i,
                "method": "tools/call",
                "params": {
                    "name": "update_memory",
                    "arguments": {"id": memory_id, "content": f"writer {i}", "expected_version": 1},
                },
            }
            response = await client.post(
                f"{two_servers[i % 2].url}/mcp/v1/common",
                content=json.dumps(body),
                headers={**account.headers, **JSONRPC_HEADERS},
            )
            assert response.status_code == 200, response.text
            result = response.json()["result"]
            if result.get("isError"):
                assert "precondition_failed" in result["content"][0]["text"], result
            return i, not result.get("isError", False)

        results = await _gather_released(WRITERS, call)
        winners = [i for i, won in results if won]
        assert len(winners) == 1, results
        stored = await client.get(f"{two_servers[1].url}/api/v1/memories/{memory_id}", headers=account.headers)
        assert stored.json()["content"] == f"writer {winners[0]}" and stored.json()["version"] == 2


async def test_dashboard_form_version_lets_exactly_one_win(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(db_factory)
    async with httpx.AsyncClient(timeout=30, base_url=two_servers[0].url) as api:
        created = await api.post("/api/v1/memories", json={"content": "v1"}, headers=person.account.headers)
        memory_id = created.json()["id"]
    browsers = [httpx.AsyncClient(timeout=30, base_url=two_servers[i % 2].url) for i in range(16)]
    try:
        tokens = []
        for browser in browsers:
            await sign_in(browser, person)
            tokens.append(csrf_of((await browser.get(f"/memories/{memory_id}")).text))

        async def save(i: int) -> tuple[int, int]:
            response = await browsers[i].post(
                f"/memories/{memory_id}",
                data={"content": f"writer {i}", "tags": "", "version": "1", "csrf_token": tokens[i]},
            )
            return i, response.status_code

        results = await _gather_released(len(browsers), save)
        statuses = [status for _, status in results]
        assert statuses.count(303) == 1 and statuses.count(412) == len(browsers) - 1, statuses
        winner = next(i for i, status in results if status == 303)
        async with httpx.AsyncClient(timeout=30, base_url=two_servers[1].url) as api:
            stored = await api.get(f"/api/v1/memories/{memory_id}", headers=person.account.headers)
        assert stored.json()["content"] == f"writer {winner}"
    finally:
        for browser in browsers:
            await browser.aclose()
