"""Connected apps (OAuth grants) across two ``vibexp serve`` processes on one database (SQLite and PostgreSQL),
each step over real HTTP:

- ``confirm_destructive`` changed on one replica reaches the other's token cache within 1 s (a client that cannot
  be asked loses, then regains, the destructive tools);
- ``/oauth/register`` holds its per-address limit across the replicas together (zero overshoot), with RFC-style
  JSON 429 and ``Retry-After``; another address is unaffected;
- a role change of the grant's person reaches its open stream on the other replica (``tools/list_changed``);
- streams opened with an access token (``subscriptions/listen`` and the handshake era's GET stream on
  ``/mcp/v1/connect``) end within 1 s of the grant's revocation on the other replica, and at the token's expiry;
- no token reaches either server's log, wherever a client put it.

The servers trust 127.0.0.1 as a proxy, so each test's browser and client speak from an address of its own
(``X-Forwarded-For``): the registration limit (3 here) is per address.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from mcpkit import connect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_mcp_legacy_stream import get_stream

from helpers.factories import make_account
from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from oauth.flow import Flow, new_flow, person_flow
from vibexp.api.mcp.confirm import CONFIRMED_TOOLS
from vibexp.core.access import Role
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.oauth.models import OAuthGrant
from vibexp.core.oauth.tokens import hash_secret

pytestmark = pytest.mark.slow

CONNECT = "/mcp/v1/connect"
GRANTS = "/api/v1/oauth/grants"
#: Changes reach the other replica within this (the token cache's and the change feed's polls: 0.25 s each).
DEADLINE = 1.0
REGISTER_LIMIT = 3
WRITES = ["prompts:read", "prompts:write", "memories:read", "memories:write"]
REGISTRATION = {"client_name": "tool", "redirect_uris": ["http://127.0.0.1:9/cb"]}
_addresses = itertools.count(1)


@pytest.fixture(scope="module")
def replicas(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {
        "VIBEXP_TRUSTED_PROXIES": "127.0.0.1/32",
        "FORWARDED_ALLOW_IPS": "192.0.2.1",  # uvicorn is not the layer that decides (see test_client_address_forgery)
        "VIBEXP_OAUTH_REGISTER_LIMIT": str(REGISTER_LIMIT),
    }
    first, second = LiveServer(database_url, env=env), LiveServer(database_url, env=env)
    start_servers((first, second), tmp_path_factory.mktemp("logs"))
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _address() -> str:
    return f"198.51.100.{next(_addresses)}"


@pytest.fixture
async def browser(replicas: tuple[LiveServer, LiveServer]) -> AsyncIterator[httpx.AsyncClient]:
    """The person's browser and the client, on the first replica, from an address of this test's own."""
    async with httpx.AsyncClient(base_url=replicas[0].url, headers={"X-Forwarded-For": _address()}, timeout=30) as http:
        yield http


async def _flow(
    browser: httpx.AsyncClient, replicas: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession]
) -> Flow:
    return await new_flow(browser, db, base=replicas[0].url, role=Role.member)


async def _tool_names(http: httpx.AsyncClient, url: str, token: str) -> set[str] | None:
    """``tools/list`` from a client that declared no capabilities; ``None`` when the token is refused."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    answer = await http.post(url, json=body, headers=headers)
    if answer.status_code == 401:
        return None
    assert answer.status_code == 200, answer.text
    return {tool["name"] for tool in answer.json()["result"]["tools"]}


async def _until(http: httpx.AsyncClient, url: str, token: str, wanted: bool) -> None:
    """Ask until the destructive tools are offered (``wanted``) or not; a request sent ``DEADLINE`` after the
    change must see it (measured when it is sent)."""
    started = time.monotonic()
    while True:
        asked = time.monotonic()
        names = await _tool_names(http, url, token)
        assert names is not None
        if bool(names & CONFIRMED_TOOLS) == wanted:
            return
        assert asked - started < DEADLINE, f"the other replica still answers as before {asked - started:.2f} s on"
        await asyncio.sleep(0.05)


async def test_confirm_destructive_reaches_the_other_replica_within_a_second(
    replicas: tuple[LiveServer, LiveServer], browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    other = replicas[1].url + CONNECT
    alice = await _flow(browser, replicas, db)
    tokens = await alice.tokens(scopes=WRITES)
    [grant] = (await browser.get(GRANTS, headers=alice.person.headers)).json()["items"]
    names = await _tool_names(browser, other, tokens["access_token"])
    assert names is not None and CONFIRMED_TOOLS & names  # cached there, without the setting
    for wanted in (True, False):
        changed = await browser.patch(
            f"{GRANTS}/{grant['id']}", json={"confirm_destructive": wanted}, headers=alice.person.headers
        )
        assert changed.status_code == 200 and changed.json()["confirm_destructive"] is wanted
        await _until(browser, other, tokens["access_token"], wanted=not wanted)


async def test_the_registration_limit_holds_across_replicas(replicas: tuple[LiveServer, LiveServer]) -> None:
    first, second = replicas
    address = _address()
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(headers={"X-Forwarded-For": address}, timeout=30) as http:
        for n in range(2 * REGISTER_LIMIT + 2):  # alternating replicas, bounded
            server = (first, second)[n % 2]
            answers.append(await http.post(server.url + "/oauth/register", json=REGISTRATION))
        elsewhere = await http.post(
            second.url + "/oauth/register", json=REGISTRATION, headers={"X-Forwarded-For": _address()}
        )
    assert [a.status_code for a in answers] == [201] * REGISTER_LIMIT + [429] * (REGISTER_LIMIT + 2)
    for refused in answers[REGISTER_LIMIT:]:
        assert refused.json()["error"] == "too_many_requests", refused.text
        assert f"at most {REGISTER_LIMIT} an hour" in refused.json()["error_description"]
        assert 0 < int(refused.headers["retry-after"]) <= 3600 + 30
        assert refused.headers["cache-control"] == "no-store" and "client_id" not in refused.json()
    assert elsewhere.status_code == 201, elsewhere.text


async def test_a_listen_stream_ends_on_revocation_on_the_other_replica(
    replicas: tuple[LiveServer, LiveServer], browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    listening = replicas[1].url + CONNECT
    alice = await _flow(browser, replicas, db)
    tokens = await alice.tokens(scopes=WRITES)
    [grant] = (await browser.get(GRANTS, headers=alice.person.headers)).json()["items"]
    async with connect(listening, tokens["access_token"]) as client, client.listen(tools_list_changed=True) as heard:
        await asyncio.sleep(0.3)  # the stream is open and subscribed to the feed
        revoked = await browser.delete(f"{GRANTS}/{grant['id']}", headers=alice.person.headers)
        assert revoked.status_code == 204
        started = time.monotonic()
        async with asyncio.timeout(DEADLINE + 0.5):
            assert [event async for event in heard] == []
        assert time.monotonic() - started < DEADLINE + 0.5
    assert await _tool_names(browser, listening, tokens["access_token"]) is None


async def test_a_role_change_tells_a_grants_stream_on_the_other_replica(
    replicas: tuple[LiveServer, LiveServer], browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    """The person's demotion narrows what their connected app may do: its open stream on the other replica hears
    ``tools/list_changed`` within 1 s, and the list it then reads has no write tool; the stream stays open."""
    account = await make_account(db)
    alice = await person_flow(browser, db, tenant_id=account.tenant.id, base=replicas[0].url, role=Role.member)
    tokens = await alice.tokens(scopes=WRITES)
    listening = replicas[1].url + CONNECT
    async with connect(listening, tokens["access_token"]) as client, client.listen(tools_list_changed=True) as heard:
        await asyncio.sleep(0.3)  # the stream is open and subscribed to the feed
        demoted = await browser.patch(
            f"/api/v1/members/{alice.person.user_id}", json={"role": Role.viewer.value}, headers=account.headers
        )
        assert demoted.status_code == 200, demoted.text
        started = time.monotonic()
        async with asyncio.timeout(DEADLINE + 0.5):
            event = await anext(aiter(heard))
        assert time.monotonic() - started < DEADLINE + 0.5
        assert "tools" in repr(event).lower(), event
    names = await _tool_names(browser, listening, tokens["access_token"])
    assert names is not None and "save_memory" not in names and "list_memories" in names, names


async def test_a_get_stream_ends_on_revocation_and_another_grants_goes_on(
    replicas: tuple[LiveServer, LiveServer], browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    listening = replicas[1].url + CONNECT
    alice = await _flow(browser, replicas, db)
    tokens = await alice.tokens(scopes=WRITES)
    kept = await alice.tokens(scopes=WRITES)  # a second grant of hers: untouched
    grants = (await browser.get(GRANTS, headers=alice.person.headers)).json()["items"]
    older = grants[-1]["id"]  # newest first: the first grant is the last
    async with (
        get_stream(listening, tokens["access_token"]) as revoked_stream,
        get_stream(listening, kept["access_token"]) as kept_stream,
    ):
        await asyncio.sleep(0.3)
        assert (await browser.delete(f"{GRANTS}/{older}", headers=alice.person.headers)).status_code == 204
        assert await revoked_stream.next(DEADLINE + 0.5) is None  # ended, the response completed
        answer = await browser.post(
            "/api/v1/prompts", json={"name": "still-heard", "content": "x"}, headers=alice.person.headers
        )
        assert answer.status_code == 201, answer.text
        assert await kept_stream.next(DEADLINE + 1) == "notifications/prompts/list_changed"


async def test_a_stream_ends_when_its_token_expires(
    replicas: tuple[LiveServer, LiveServer], browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    """The token is made to expire two seconds from now (in the database, as a shorter token lifetime would); a
    stream opened with it ends then, and the token is refused."""
    listening = replicas[1].url + CONNECT
    alice = await _flow(browser, replicas, db)
    tokens = await alice.tokens(scopes=WRITES)
    async with session_scope(db, write=True) as session:
        grant = await session.get(OAuthGrant, (await _grant_id(db, tokens["access_token"])))
        assert grant is not None
        expires = utcnow() + timedelta(seconds=2)
        grant.access_expires_at, grant.updated_at = expires, utcnow()
    await asyncio.sleep(DEADLINE)  # every replica's token cache has re-read the grant
    async with get_stream(listening, tokens["access_token"]) as stream:
        async with asyncio.timeout(2 + DEADLINE + 1):
            assert await stream.next(2 + DEADLINE + 1) is None
        assert utcnow() >= expires
    assert await _tool_names(browser, listening, tokens["access_token"]) is None


async def _grant_id(db: async_sessionmaker[AsyncSession], access_token: str) -> str:
    async with db() as session:
        found = await session.scalar(select(OAuthGrant.id).where(OAuthGrant.access_hash == hash_secret(access_token)))
    assert found is not None
    return str(found)


async def test_no_token_reaches_either_log(
    replicas: tuple[LiveServer, LiveServer], browser: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    """Tokens where clients misplace them (a query string, a path), a code's redirect, a revocation: each server's
    log masks them to their prefix (``vibexp.core.redaction``), as it does keys."""
    alice = await _flow(browser, replicas, db)
    code = await alice.code(scopes=WRITES)
    answer = await alice.exchange(code)
    tokens = answer.json()
    secrets = [tokens["access_token"], tokens["refresh_token"], code]
    for server in replicas:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-Forwarded-For": _address()}, timeout=30) as http:
            await http.get(f"{CONNECT}?access_token={tokens['access_token']}")
            await http.get(f"/api/v1/{tokens['access_token']}/prompts")
            await http.get(f"/oauth/{tokens['refresh_token']}")
            await http.get(f"/oauth/authorize/{code}")
            await http.post("/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": alice.client_id})
    await asyncio.sleep(0.3)
    for server in replicas:
        log = server.log()
        assert f"{CONNECT}?[redacted]" in log or CONNECT in log  # the access log is on
        for secret in secrets:
            assert secret[13:] not in log, f"{secret[:5]} token found in {server.url}'s log"
        assert tokens["access_token"][:13] + "…" in log  # masked to its prefix, not dropped
