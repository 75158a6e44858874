"""Rate-limit headers on every authenticated response, consistent with each other, and 429 past the limit."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.factories import Account, make_account
from helpers.windows import inside_one_hour_window

POLICY_RE = re.compile(r'"hourly";q=(\d+);w=3600')
RATELIMIT_RE = re.compile(r'"hourly";r=(\d+);t=(\d+)')


def _check_headers(response: httpx.Response, *, limit: int) -> int:
    """Assert the headers agree with each other and with the clock; return the remaining count."""
    h = response.headers
    assert int(h["x-ratelimit-limit"]) == limit, h
    remaining = int(h["x-ratelimit-remaining"])
    reset = int(h["x-ratelimit-reset"])
    now = time.time()
    assert reset % 3600 == 0 and 0 < reset - now <= 3600 + 1, (reset, now)  # the top of the next UTC hour
    policy = POLICY_RE.fullmatch(h["ratelimit-policy"])
    assert policy and int(policy.group(1)) == limit, h["ratelimit-policy"]
    current = RATELIMIT_RE.fullmatch(h["ratelimit"])
    assert current, h["ratelimit"]
    assert int(current.group(1)) == remaining
    assert abs(int(current.group(2)) - (reset - now)) <= 2
    return remaining


async def test_headers_on_every_authenticated_response(client: httpx.AsyncClient, account: Account) -> None:
    await inside_one_hour_window()
    requests = [
        ("GET", "/api/v1/prompts", None, 200),
        ("POST", "/api/v1/memories", {"content": "x"}, 201),
        ("GET", "/api/v1/memories/01a218c7-0feb-7eda-9259-74484cca0ebb", None, 404),
        ("POST", "/api/v1/memories", {"content": 1}, 422),
        ("PATCH", "/api/v1/memories", None, 405),
        ("GET", "/api/v1/api-keys", None, 200),
        ("GET", "/api/v1/account", None, 200),
        ("GET", "/api/v1/unknown-route", None, 404),
    ]
    remaining_seen = []
    for method, path, body, status in requests:
        response = await client.request(method, path, json=body, headers=account.headers)
        assert response.status_code == status, (path, response.text)
        remaining_seen.append(_check_headers(response, limit=1000))
    # Each request counts once against the tenant's hour, except reading the account's own limit status.
    counted = list(range(999, 999 - len(requests) + 1, -1))
    at = [path for _, path, _, _ in requests].index("/api/v1/account")
    assert remaining_seen == [*counted[:at], counted[at - 1], *counted[at:]]


async def test_pro_tier_limit(client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]) -> None:
    from vibexp.core.tenants.models import Tier

    await inside_one_hour_window()
    pro = await make_account(session_factory, tier=Tier.pro)
    response = await client.get("/api/v1/prompts", headers=pro.headers)
    assert _check_headers(response, limit=10_000) == 9_999


async def test_the_fourth_request_of_a_limit_of_three_is_429(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], account: Account
) -> None:
    await inside_one_hour_window()
    small = await make_account(session_factory, rate_limit=3)
    for expected_remaining in (2, 1, 0):
        response = await client.get("/api/v1/prompts", headers=small.headers)
        assert response.status_code == 200
        assert _check_headers(response, limit=3) == expected_remaining

    refused = await client.get("/api/v1/prompts", headers=small.headers)
    error = assert_error(refused, 429, "rate_limited")
    assert "3" in error["message"]
    assert _check_headers(refused, limit=3) == 0
    retry_after = int(refused.headers["retry-after"])
    to_reset = int(refused.headers["x-ratelimit-reset"]) - time.time()
    assert to_reset - 2 <= retry_after <= to_reset + 31  # the next window, spread by a little jitter

    # Every route is refused, writes included, and nothing is written.
    write = await client.post("/api/v1/memories", json={"content": "x"}, headers=small.headers)
    assert_error(write, 429, "rate_limited")
    # Other tenants are not affected.
    assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json"])
async def test_unauthenticated_routes_carry_no_limit_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert "x-ratelimit-limit" not in response.headers
