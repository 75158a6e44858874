"""A connected app revoked over REST on one ``vibexp serve`` replica is refused on the other within 1 s (two real
processes on one database, SQLite and PostgreSQL; the token is real, from the register → consent → token flow)."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.servers import LiveServer
from oauth.flow import list_tools, new_flow


async def test_a_rest_revocation_reaches_the_other_replica_within_a_second(
    two_servers: tuple[LiveServer, LiveServer], db_factory: async_sessionmaker[AsyncSession]
) -> None:
    first, second = two_servers
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
        flow = await new_flow(http, db_factory, base=first.url)
        tokens = await flow.tokens()
        other = f"{second.url}/mcp/v1/connect"
        assert (await list_tools(http, tokens["access_token"], other)).status_code == 200  # verified and cached there
        listed = await http.get(f"{second.url}/api/v1/oauth/grants", headers=flow.person.headers)
        [grant] = listed.json()["items"]
        assert grant["revoked_at"] is None
        revoked = await http.delete(f"/api/v1/oauth/grants/{grant['id']}", headers=flow.person.headers)
        started = time.monotonic()
        assert revoked.status_code == 204, revoked.text
        while (await list_tools(http, tokens["access_token"], other)).status_code == 200:
            assert time.monotonic() - started < 1.0, "the other replica still accepts a revoked grant's token after 1 s"
            await asyncio.sleep(0.05)
        assert (await list_tools(http, tokens["access_token"], other)).status_code == 401
        assert (await list_tools(http, tokens["access_token"], f"{first.url}/mcp/v1/connect")).status_code == 401
        again = await http.get(f"{second.url}/api/v1/oauth/grants", headers=flow.person.headers)
        assert again.json()["items"][0]["revoked_reason"] == "revoked"
