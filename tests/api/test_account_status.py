"""``GET /api/v1/account`` is the limit status: readable over the limit and never counted (GitHub's /rate_limit)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from helpers.windows import inside_one_hour_window


async def test_a_tenant_over_its_limit_still_reads_its_account_without_being_counted(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await inside_one_hour_window()
    small = await make_account(session_factory, rate_limit=3)
    for _ in range(3):
        assert (await client.get("/api/v1/prompts", headers=small.headers)).status_code == 200
    assert (await client.get("/api/v1/prompts", headers=small.headers)).status_code == 429
    for _ in range(5):
        status = await client.get("/api/v1/account", headers=small.headers)
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["hourly_limit"] == 3 and body["used_this_hour"] == 3
        assert status.headers["x-ratelimit-remaining"] == "0" and status.headers["x-ratelimit-used"] == "3"
        assert status.headers["x-ratelimit-limit"] == "3" and "retry-after" not in status.headers
    # Other routes stay refused, and only the refused ones were counted as attempts (not the status reads).
    refused = await client.get("/api/v1/memories", headers=small.headers)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    # Under the limit the status endpoint does not use up the budget either.
    fresh = await make_account(session_factory, rate_limit=2)
    for _ in range(4):
        assert (await client.get("/api/v1/account", headers=fresh.headers)).json()["used_this_hour"] == 0
    assert (await client.get("/api/v1/prompts", headers=fresh.headers)).status_code == 200
    assert (await client.get("/api/v1/prompts", headers=fresh.headers)).status_code == 200
    assert (await client.get("/api/v1/prompts", headers=fresh.headers)).status_code == 429
