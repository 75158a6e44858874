"""Handshake-era clients (2025-06-18 / 2025-03-26 ``initialize``: Claude Code, Cursor, VS Code) are asked before a
destructive tool of a key with ``confirm_destructive`` (issue #30): the ``initialize`` answer carries a sealed
``Mcp-Session-Id`` holding what the client declared; ``tools/list`` shows the destructive tools when it declared
form elicitation; a call of one is answered with an SSE stream carrying ``elicitation/create``, and the person's
answer (a new POST, which may reach another replica) decides.

The official TypeScript SDK client (tests/mcp/clients/handshake_confirm.mjs, ``make clients``) is asked for real;
the raw HTTP tests drive the stream by hand, to send the answer to another process on the same database and to send
bad answers. The key reaches the script in its environment, never its arguments.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcpkit import CAPPED_KEEPALIVE_SECONDS, MCP_PATH, confirming_key
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account
from helpers.servers import REPO, LiveServer
from oauth.flow import person_flow
from vibexp.api.mcp.confirm import CONFIRMED_TOOLS
from vibexp.api.mcp.handshake import QUESTION_ID_PREFIX
from vibexp.core.access import Role
from vibexp.core.relayed_answers import RelayedAnswer

CLIENTS = REPO / "tests" / "clients"
SCRIPT = REPO / "tests" / "mcp" / "clients" / "handshake_confirm.mjs"
VERSION = "2025-06-18"
ELICITS = {"elicitation": {}}
ACCEPT = {"action": "accept", "content": {"confirm": True}}


# -- the TypeScript SDK client --------------------------------------------------------------------------------------
async def run_client(url: str, key: str, answer: str, tool: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the script once (bounded: 60 s); its JSON lines. The key is redacted from anything shown."""
    if not (CLIENTS / "node_modules" / "@modelcontextprotocol" / "client").exists():
        pytest.fail("tests/clients/node_modules lacks @modelcontextprotocol/client: run `make clients`", pytrace=False)
    process = await asyncio.create_subprocess_exec(
        *("node", str(SCRIPT), str(CLIENTS), url, answer, tool, json.dumps(arguments)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "VIBEXP_KEY": key},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    shown = (str(records) + err.decode()).replace(key, "<key>")
    assert process.returncode == 0, shown
    assert not [r for r in records if r["event"] == "error"], shown
    return records


def _one(records: list[dict[str, Any]], event: str) -> dict[str, Any]:
    found = [r for r in records if r["event"] == event]
    assert len(found) == 1, records
    return found[0]


async def _memory(rest: httpx.AsyncClient, account: Account, content: str) -> str:
    created = await rest.post("/api/v1/memories", json={"content": content}, headers=account.headers)
    assert created.status_code == 201, created.text
    memory_id: str = created.json()["id"]
    return memory_id


async def _memory_status(rest: httpx.AsyncClient, account: Account, memory_id: str) -> int:
    return (await rest.get(f"/api/v1/memories/{memory_id}", headers=account.headers)).status_code


@pytest.mark.clients
async def test_the_typescript_client_is_asked_and_accepting_deletes(
    mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    key = await confirming_key(rest, account)
    memory_id = await _memory(rest, account, "prefers tabs")
    records = await run_client(mcp_url, key, "accept", "delete_memory", {"id": memory_id})
    connected = _one(records, "connected")
    assert connected["sessionId"] is True and connected["protocolVersion"] != "2026-07-28", connected
    assert set(_one(records, "tools")["names"]) >= CONFIRMED_TOOLS, records
    asked = _one(records, "asked")
    assert asked["message"] == f"Delete the memory {memory_id}: 'prefers tabs'? This cannot be undone.", asked
    assert asked["schema"]["required"] == ["confirm"], asked
    result = _one(records, "result")["result"]
    assert not result.get("isError"), result
    assert await _memory_status(rest, account, memory_id) == 404


@pytest.mark.clients
async def test_the_typescript_client_declining_changes_nothing(
    mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    key = await confirming_key(rest, account)
    memory_id = await _memory(rest, account, "likes tea")
    records = await run_client(mcp_url, key, "decline", "delete_memory", {"id": memory_id})
    _one(records, "asked")
    result = _one(records, "result")["result"]
    assert result["isError"] is True, result
    assert result["content"][0]["text"].startswith("declined: the person declined the confirmation"), result
    assert await _memory_status(rest, account, memory_id) == 200


@pytest.mark.clients
async def test_a_typescript_client_without_elicitation_does_not_see_the_tools(
    mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    key = await confirming_key(rest, account)
    memory_id = await _memory(rest, account, "likes coffee")
    records = await run_client(mcp_url, key, "none", "delete_memory", {"id": memory_id})
    names = set(_one(records, "tools")["names"])
    assert not names & CONFIRMED_TOOLS and "save_memory" in names, names
    assert not [r for r in records if r["event"] == "asked"], records
    result = _one(records, "result")["result"]
    assert result["content"][0]["text"].startswith("confirmation_unavailable:"), result
    assert await _memory_status(rest, account, memory_id) == 200


@pytest.mark.clients
async def test_a_connected_app_in_the_typescript_client_is_asked_too(
    server: LiveServer, db: async_sessionmaker[AsyncSession], account: Account, rest: httpx.AsyncClient
) -> None:
    """The same client on ``/mcp/v1/connect`` with an OAuth access token whose grant asks first (the consent
    page's box): asked, declining keeps the memory, accepting deletes it."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as browser:
        flow = await person_flow(browser, db, tenant_id=account.tenant.id, base=server.url, role=Role.member)
        tokens = await flow.tokens(scopes=["memories:read", "memories:write"], confirm_destructive=True)
    memory_id = await _memory(rest, account, "keeps a diary")
    connect_url, token = server.url + "/mcp/v1/connect", tokens["access_token"]
    declined = await run_client(connect_url, token, "decline", "delete_memory", {"id": memory_id})
    assert _one(declined, "asked")["message"].startswith(f"Delete the memory {memory_id}"), declined
    assert _one(declined, "result")["result"]["isError"] is True
    assert await _memory_status(rest, account, memory_id) == 200
    accepted = await run_client(connect_url, token, "accept", "delete_memory", {"id": memory_id})
    _one(accepted, "asked")
    assert not _one(accepted, "result")["result"].get("isError"), accepted
    assert await _memory_status(rest, account, memory_id) == 404


# -- by hand, over raw HTTP -----------------------------------------------------------------------------------------
def _headers(key: str, session: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}
    if session is not None:
        headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = VERSION
    return headers


async def initialize(http: httpx.AsyncClient, key: str, capabilities: dict[str, Any]) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": VERSION,
            "capabilities": capabilities,
            "clientInfo": {"name": "raw-handshake", "version": "1"},
        },
    }
    response = await http.post(MCP_PATH, json=body, headers=_headers(key))
    assert response.status_code == 200, response.text
    return response


async def open_session(http: httpx.AsyncClient, key: str, capabilities: dict[str, Any] = ELICITS) -> str:
    session: str = (await initialize(http, key, capabilities)).headers["mcp-session-id"]
    return session


async def listed(http: httpx.AsyncClient, key: str, session: str | None) -> set[str]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = await http.post(MCP_PATH, json=body, headers=_headers(key, session))
    assert response.status_code == 200, response.text
    return {tool["name"] for tool in response.json()["result"]["tools"]}


class Stream:
    """An SSE answer being read, event by event (each ``message`` event's JSON)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments = 0

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            data: list[str] = []
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments += 1
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    found: dict[str, Any] = json.loads("".join(data))
                    return found
        raise AssertionError("the stream ended without another event")

    async def until_comments(self, count: int, timeout: float) -> None:
        """Read until ``count`` SSE comments have come (and no event)."""
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                assert not line.startswith("data:"), line
                self.comments += line.startswith(":")
                if self.comments >= count:
                    return
        raise AssertionError("the stream ended")


@asynccontextmanager
async def calling(
    http: httpx.AsyncClient, key: str, session: str, tool: str, arguments: dict[str, Any]
) -> AsyncIterator[Stream]:
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    async with http.stream("POST", MCP_PATH, json=body, headers=_headers(key, session)) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream"), response.headers
        yield Stream(response)


async def answer(
    http: httpx.AsyncClient, key: str, session: str | None, question_id: str, result: Any
) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": question_id, "result": result}
    return await http.post(MCP_PATH, json=body, headers=_headers(key, session))


async def test_the_answer_reaches_the_call_waiting_on_another_process(
    two_servers: tuple[LiveServer, LiveServer], account: Account
) -> None:
    first, second = two_servers
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        key = await confirming_key(a, account)
        memory_id = await _memory(a, account, "ships on fridays")
        session = await open_session(a, key)
        assert await listed(b, key, session) >= CONFIRMED_TOOLS  # any replica opens the session
        assert not CONFIRMED_TOOLS & await listed(b, key, None)  # no session: nothing says the client can be asked
        async with calling(a, key, session, "delete_memory", {"id": memory_id}) as stream:
            asking = await stream.next()
            assert asking["method"] == "elicitation/create" and asking["id"].startswith(QUESTION_ID_PREFIX), asking
            assert asking["params"]["message"].startswith(f"Delete the memory {memory_id}"), asking
            assert asking["params"]["requestedSchema"]["required"] == ["confirm"], asking
            assert await _memory_status(b, account, memory_id) == 200  # nothing before the answer
            taken = await answer(b, key, session, asking["id"], ACCEPT)
            assert taken.status_code == 202, taken.text
            final = await stream.next()
        assert final["id"] == 7 and not final["result"].get("isError"), final
        assert final["result"]["structuredContent"] == {"deleted": True, "what": f"memory {memory_id}"}, final
        assert await _memory_status(b, account, memory_id) == 404
        again = await answer(b, key, session, asking["id"], ACCEPT)  # the question is closed
        assert again.status_code == 404 and again.json()["error"]["code"] == "not_found", again.text


async def test_a_key_that_does_not_confirm_gets_no_session(
    server: LiveServer, account: Account, rest: httpx.AsyncClient
) -> None:
    response = await initialize(rest, account.key, ELICITS)
    assert "mcp-session-id" not in response.headers
    assert set(await listed(rest, account.key, None)) >= CONFIRMED_TOOLS  # it asks nothing: every tool is shown


async def test_a_client_that_declared_no_elicitation_does_not_see_the_tools(
    server: LiveServer, account: Account, rest: httpx.AsyncClient
) -> None:
    key = await confirming_key(rest, account)
    session = await open_session(rest, key, {})
    names = await listed(rest, key, session)
    assert not names & CONFIRMED_TOOLS and "save_memory" in names, names


async def test_a_forged_or_another_keys_session_is_unknown(
    server: LiveServer, account: Account, rest: httpx.AsyncClient
) -> None:
    key, other = await confirming_key(rest, account), await confirming_key(rest, account)
    session = await open_session(rest, key)
    nonce, _, sealed = session.partition(".")
    forged = f"{nonce}.{sealed[:-2]}{'AA' if not sealed.endswith('AA') else 'BB'}"
    for who, presented in ((key, forged), (key, "not-a-session"), (other, session)):
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        response = await rest.post(MCP_PATH, json=body, headers=_headers(who, presented))
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "session_not_found", response.text
        gone = await rest.delete(MCP_PATH, headers=_headers(who, presented))
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "session_not_found", gone.text
        streamed = await rest.get(MCP_PATH, headers={**_headers(who, presented), "Accept": "text/event-stream"})
        assert streamed.status_code == 404, streamed.text
    # The session's own key: the GET event stream opens with it, and DELETE ends it (nothing is kept: 204).
    streaming = {**_headers(key, session), "Accept": "text/event-stream"}
    async with rest.stream("GET", MCP_PATH, headers=streaming) as opened:
        assert opened.status_code == 200 and opened.headers["content-type"].startswith("text/event-stream")
    ended = await rest.delete(MCP_PATH, headers=_headers(key, session))
    assert ended.status_code == 204, ended.text


async def test_bad_answers_change_nothing(server: LiveServer, account: Account, rest: httpx.AsyncClient) -> None:
    key, other = await confirming_key(rest, account), await confirming_key(rest, account)
    memory_id = await _memory(rest, account, "reads at night")
    session, others_session = await open_session(rest, key), await open_session(rest, other)
    unknown = await answer(rest, key, session, QUESTION_ID_PREFIX + "x" * 32, ACCEPT)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found", unknown.text
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as caller,
        calling(caller, key, session, "delete_memory", {"id": memory_id}) as stream,
    ):
        asking = await stream.next()
        # Another key (with its own session), or this key without the session that was asked: not theirs to answer.
        for who, presented in ((other, others_session), (key, None)):
            refused = await answer(rest, who, presented, asking["id"], ACCEPT)
            assert refused.status_code == 404, refused.text
        assert await _memory_status(rest, account, memory_id) == 200
        misshapen = await answer(rest, key, session, asking["id"], {"action": "accept", "content": {"confirm": "y"}})
        assert misshapen.status_code == 400, misshapen.text
        assert misshapen.json()["error"]["code"] == "invalid_confirmation", misshapen.text
        final = await stream.next()
    assert final["error"]["code"] == -32602 and final["error"]["data"]["code"] == "invalid_confirmation", final
    assert await _memory_status(rest, account, memory_id) == 200


async def test_unanswered_in_time_is_a_tool_error_and_a_late_answer_is_refused(
    quick_server: LiveServer, account: Account
) -> None:
    async with httpx.AsyncClient(base_url=quick_server.url, timeout=30) as http:
        key = await confirming_key(http, account)
        memory_id = await _memory(http, account, "wakes early")
        session = await open_session(http, key)
        async with calling(http, key, session, "delete_memory", {"id": memory_id}) as stream:
            asking = await stream.next()
            final = await stream.next(timeout=10)
        text = final["result"]["content"][0]["text"]
        assert final["result"]["isError"] is True and text.startswith("confirmation_timeout:"), final
        late = await answer(http, key, session, asking["id"], ACCEPT)
        assert late.status_code == 404, late.text
        assert await _memory_status(http, account, memory_id) == 200


async def test_the_wait_is_kept_alive_and_a_vanished_client_frees_it(
    capped: LiveServer, account: Account, db: async_sessionmaker[AsyncSession]
) -> None:
    async with httpx.AsyncClient(base_url=capped.url, timeout=30) as http:
        key = await confirming_key(http, account)
        memory_id = await _memory(http, account, "walks the dog")
        session = await open_session(http, key)
        async with calling(http, key, session, "delete_memory", {"id": memory_id}) as stream:
            asking = await stream.next()
            await stream.until_comments(2, CAPPED_KEEPALIVE_SECONDS * 10)  # ": keep-alive" while the person thinks
            assert await _waiting(db, asking["id"]) == 1
        # The client went away without answering: the wait ends and its question is closed (bounded poll).
        for _ in range(50):
            if await _waiting(db, asking["id"]) == 0:
                break
            await asyncio.sleep(0.1)
        assert await _waiting(db, asking["id"]) == 0
        late = await answer(http, key, session, asking["id"], ACCEPT)
        assert late.status_code == 404, late.text
        assert await _memory_status(http, account, memory_id) == 200


async def _waiting(db: async_sessionmaker[AsyncSession], question_id: str) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).where(RelayedAnswer.id == question_id)) or 0)


async def test_the_sdk_transport_runs_the_accepted_call_too(sdk_server: LiveServer, account: Account) -> None:
    """With the fast path off (``VIBEXP_MCP_FAST_PATH=false``) the accepted call goes through the SDK's own
    transport: the same stream, the same result."""
    async with httpx.AsyncClient(base_url=sdk_server.url, timeout=30) as http:
        key = await confirming_key(http, account)
        memory_id = await _memory(http, account, "sdk transport")
        session = await open_session(http, key)
        assert await listed(http, key, session) >= CONFIRMED_TOOLS
        async with calling(http, key, session, "delete_memory", {"id": memory_id}) as stream:
            asking = await stream.next()
            taken = await answer(http, key, session, asking["id"], ACCEPT)
            assert taken.status_code == 202, taken.text
            final = await stream.next()
        assert final["id"] == 7 and final["result"]["structuredContent"]["deleted"] is True, final
        assert await _memory_status(http, account, memory_id) == 404
