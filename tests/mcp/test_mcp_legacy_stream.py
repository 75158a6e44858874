"""The handshake era's GET event stream on ``/mcp/v1/common`` (``vibexp.api.mcp.live.EventStreams``), read raw with
httpx from one ``vibexp serve`` process while edits are made through the REST API of another (two replicas on one
database): it hears its own account only, and only what its key may read; it ends when its key is revoked; the
caps refuse with the API's error body (429 for the key, 503 for the process); a client that goes away gives its
slot back; silence is filled with keep-alive comments; a GET that does not accept ``text/event-stream`` is 405.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from mcpkit import CAPPED_IDLE_SECONDS, CAPPED_KEEPALIVE_SECONDS, MCP_PATH
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account
from helpers.servers import LiveServer
from vibexp.core.access import Caller
from vibexp.core.db import session_scope
from vibexp.core.keys import usecases as keys

pytestmark = pytest.mark.slow

DEADLINE = 2.0
PROMPTS = "notifications/prompts/list_changed"
RESOURCES = "notifications/resources/list_changed"
TOOLS = "notifications/tools/list_changed"
#: The capped server's keep-alive and idle time (the idle time long enough that no caps test stream idles out).
KEEPALIVE_SECONDS = CAPPED_KEEPALIVE_SECONDS
IDLE_SECONDS = CAPPED_IDLE_SECONDS


class EventStream:
    """An open GET stream: the JSON-RPC notification methods it sends (read by a task, so a timed-out wait does not
    break the reading), and its comments kept aside."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []
        self.opening: list[str] = []
        self._methods: asyncio.Queue[str | None] = asyncio.Queue()

    async def read(self) -> None:
        """Read the stream to its end (``None`` queued then)."""
        opening = True
        try:
            async for line in self.response.aiter_lines():
                if opening:
                    self.opening.append(line)
                    opening = line != ""  # the opening block ends with its blank line
                elif line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("data:"):
                    message: dict[str, Any] = json.loads(line[5:])
                    assert message["jsonrpc"] == "2.0" and "id" not in message, message
                    self._methods.put_nowait(message["method"])
        finally:
            self._methods.put_nowait(None)

    async def next(self, timeout: float = DEADLINE) -> str | None:
        """The method of the next notification within ``timeout``; ``None``: the stream ended."""
        async with asyncio.timeout(timeout):
            return await self._methods.get()

    async def silent(self, seconds: float) -> None:
        """No notification arrives (and the stream does not end) for ``seconds``."""
        with pytest.raises(TimeoutError):
            heard = await self.next(seconds)
            pytest.fail(f"heard {heard}")


@asynccontextmanager
async def get_stream(url: str, key: str) -> AsyncIterator[EventStream]:
    """A GET stream that is open; leaving drops the connection."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(timeout=30) as http, http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-store"
        stream = EventStream(response)
        reader = asyncio.create_task(stream.read())
        try:
            yield stream
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def _refusal(url: str, key: str) -> httpx.Response:
    """The answer to a GET stream that must be refused, asked again for up to ``DEADLINE`` while it is still opened
    (a revocation reaches the key cache by its own poll; an opened stream is closed unread, never waited on)."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            asked = time.monotonic()
            async with http.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    await response.aread()
                    return response
            assert asked - started < DEADLINE, f"a stream was still opened {asked - started:.2f} s after"
            await asyncio.sleep(0.02)


async def _all_open(url: str, *keys: str) -> bool:
    """Whether GET streams for all ``keys`` open together now (they are closed at once)."""
    async with httpx.AsyncClient(timeout=30) as http, AsyncExitStack() as stack:
        for key in keys:
            headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
            response = await stack.enter_async_context(http.stream("GET", url, headers=headers))
            if response.status_code != 200:
                return False
        return True


async def _new_key(rest: httpx.AsyncClient, headers: dict[str, str], scopes: list[str]) -> tuple[str, str]:
    made = await rest.post("/api/v1/api-keys", json={"name": "-".join(scopes), "scopes": scopes}, headers=headers)
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


async def test_a_get_stream_hears_its_own_account_within_two_seconds(
    two_servers: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession]
) -> None:
    listening, editing = two_servers
    mine, other = await make_account(db), await make_account(db)
    async with (
        httpx.AsyncClient(base_url=editing.url, timeout=30) as rest,
        get_stream(listening.url + MCP_PATH, mine.key) as stream,
    ):
        # Another account's edits: not heard.
        answer = await rest.post("/api/v1/prompts", json={"name": "theirs", "content": "x"}, headers=other.headers)
        assert answer.status_code == 201
        await stream.silent(1.0)
        for n in range(3):
            started = time.monotonic()
            answer = await rest.post("/api/v1/prompts", json={"name": f"p{n}", "content": "x"}, headers=mine.headers)
            assert answer.status_code == 201, answer.text
            assert await stream.next() == PROMPTS
            assert time.monotonic() - started < DEADLINE
        body = {"project": "web", "slug": "notes", "title": "n", "content": "x"}
        answer = await rest.post("/api/v1/artifacts", json=body, headers=mine.headers)
        assert answer.status_code == 201, answer.text
        assert await stream.next() == RESOURCES  # no resources/updated: this era cannot subscribe here
        await stream.silent(0.5)


async def test_a_get_stream_hears_what_its_key_may_read_and_ends_with_the_key(
    two_servers: tuple[LiveServer, LiveServer], db: async_sessionmaker[AsyncSession]
) -> None:
    listening, editing = two_servers
    account = await make_account(db)
    url = listening.url + MCP_PATH
    async with httpx.AsyncClient(base_url=editing.url, timeout=30) as rest:
        _, prompts_only = await _new_key(rest, account.headers, ["prompts:read"])
        memories_id, memories_only = await _new_key(rest, account.headers, ["memories:read"])
        async with get_stream(url, prompts_only) as prompts_stream, get_stream(url, memories_only) as memories_stream:
            body = {"project": "web", "slug": "a", "title": "a", "content": "x"}
            answer = await rest.post("/api/v1/artifacts", json=body, headers=account.headers)
            assert answer.status_code == 201
            answer = await rest.post("/api/v1/prompts", json={"name": "p", "content": "x"}, headers=account.headers)
            assert answer.status_code == 201
            assert await prompts_stream.next() == PROMPTS  # the artifact before it was not heard
            await prompts_stream.silent(1.0)
            await memories_stream.silent(0.5)
            # The memories key is given prompts:read: its tools and its prompt list changed.
            owner = Caller.cli(account.tenant.id)
            async with session_scope(db, write=True) as session:
                await keys.set_permissions(
                    session,
                    caller=owner,
                    key_id=memories_id,
                    scopes=["memories:read", "prompts:read"],
                    allowed_cidrs=[],
                )
            assert {await memories_stream.next(), await memories_stream.next()} == {TOOLS, PROMPTS}
            # Revoked: its stream ends, the response completed; the other key's stream goes on.
            async with session_scope(db, write=True) as session:
                await keys.revoke(session, caller=owner, key_id=memories_id)
            assert await memories_stream.next(DEADLINE + 1) is None
            answer = await rest.post("/api/v1/prompts", json={"name": "q", "content": "x"}, headers=account.headers)
            assert answer.status_code == 201
            assert await prompts_stream.next() == PROMPTS
        # A revoked key opens no stream.
        refused = await _refusal(url, memories_only)
        assert refused.status_code == 401, refused.text


async def test_the_caps_refuse_clearly_and_clients_that_go_away_give_their_slots_back(
    capped: LiveServer, db: async_sessionmaker[AsyncSession]
) -> None:
    url = capped.url + MCP_PATH
    first, second = await make_account(db), await make_account(db)
    for _round in range(3):  # each round the clients go away (connections dropped); the slots must come back
        async with get_stream(url, first.key), get_stream(url, first.key):
            refused = await _refusal(url, first.key)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "too_many_listeners"
            assert "already has 2 open listen streams" in refused.json()["error"]["message"]
            assert int(refused.headers["retry-after"]) > 0
            async with get_stream(url, second.key):
                refused = await _refusal(url, second.key)  # the process's cap: 3
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "too_many_listeners"
                assert "This server already has 3" in refused.json()["error"]["message"]
        # The server notices the dropped connections at once (not at the next keep-alive): all three slots are free.
        async with asyncio.timeout(5):
            while not await _all_open(url, first.key, first.key, second.key):
                await asyncio.sleep(0.1)


async def test_silence_is_kept_alive_and_an_idle_stream_ends(
    capped: LiveServer, db: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db)
    started = time.monotonic()
    async with get_stream(capped.url + MCP_PATH, account.key) as stream:
        assert await stream.next(IDLE_SECONDS + 10) is None  # nothing to say: it ends, completed
        elapsed = time.monotonic() - started
        assert IDLE_SECONDS - 1 < elapsed < IDLE_SECONDS + 10
        # A comment each KEEPALIVE_SECONDS of silence (give or take a busy machine).
        assert IDLE_SECONDS / KEEPALIVE_SECONDS / 2 <= len(stream.comments) <= IDLE_SECONDS / KEEPALIVE_SECONDS + 1
        assert set(stream.comments) == {": keep-alive"}
        # It opened saying how soon to connect again once it ends.
        assert stream.opening[0].startswith("retry:") and int(stream.opening[0][6:]) > 0


async def test_a_get_that_does_not_accept_an_event_stream_is_405(mcp_url: str, account: Account) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for accept in (None, "application/json", "text/*"):
            headers = account.headers | ({"Accept": accept} if accept else {})
            answer = await http.get(mcp_url, headers=headers)
            assert answer.status_code == 405, (accept, answer.text)
            assert answer.json()["error"]["code"] == "method_not_allowed"
            assert answer.headers["allow"] == "GET, POST"
        # Without a key: 401 before anything else, as for POST.
        answer = await http.get(mcp_url, headers={"Accept": "text/event-stream"})
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
        # A foreign Host is refused, as for POST (DNS rebinding).
        headers = account.headers | {"Accept": "text/event-stream", "Host": "attacker.example"}
        answer = await http.get(mcp_url, headers=headers)
        assert answer.status_code == 421 and answer.json()["error"]["code"] == "misdirected_request"
