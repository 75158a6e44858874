"""The fast path for single stateless JSON-RPC POSTs (``vibexp.api.mcp.fastpath``): it answers exactly as the SDK's
transport does, and it is really taken (no SDK transport is built for it)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcpkit import MCP_PATH
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Message

from helpers.factories import Account
from helpers.servers import LiveServer
from vibexp.api.mcp.context import mcp_action
from vibexp.api.mcp.fastpath import UNPARSED, parse_body, read_body, remember_body
from vibexp.api.mcp.mount import McpFrontDoor
from vibexp.api.request_state import RequestUsage
from vibexp.core.content.schemas import ArtifactCreate, PromptCreate
from vibexp.core.content.service import artifacts, prompts
from vibexp.core.db import session_scope

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
#: What the SDK logs (at DEBUG) each time it builds a per-request transport for a stateless POST.
SDK_TRANSPORT_LINE = "Stateless mode: Creating new transport for this request"


def _calls() -> list[tuple[dict[str, Any], dict[str, str]]]:
    def call(
        method: str, params: dict[str, Any] | None = None, **headers: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": method}
        if params is not None:
            body["params"] = params
        return body, headers

    return [
        call("tools/call", {"name": "get_prompt", "arguments": {"name": "fast"}}),
        call("tools/call", {"name": "get_prompt", "arguments": {"name": "fast", "arguments": {"file": "a.py"}}}),
        call("tools/call", {"name": "get_prompt", "arguments": {"name": "missing"}}),
        call("tools/call", {"name": "get_prompt", "arguments": {}}),
        call("tools/call", {"name": "no_such_tool", "arguments": {}}),
        call("tools/list", **{"MCP-Protocol-Version": "2025-06-18"}),
        call("prompts/list"),
        call("prompts/get", {"name": "fast", "arguments": {"file": "b.py"}}),
        call("resources/templates/list"),
        call("resources/read", {"uri": "artifact://nope/nope"}),
        call("ping"),
        call("no/such/method"),
        call("prompts/get", {"name": 5}),
        call("prompts/get", {"name": "missing"}),
        call("prompts/get", {}),
        call("resources/list"),
        call("resources/read", {"uri": "artifact://fp/notes"}),
        call("resources/read", {"uri": 5}),
        call("tools/list"),
        call("tools/call", {"name": "get_prompt", "arguments": {"name": 5}}),
        call("tools/call", {"name": "get_prompt", "arguments": {"name": "fast", "extra": True}}),
        call("tools/call", {"name": "get_prompt", "arguments": {"name": "bad\u0000name"}}),
        call("tools/call", {"name": "get_prompt", "arguments": "not an object"}),
        call("tools/call", {"arguments": {"name": "fast"}}),
        call("tools/call", {"name": 5, "arguments": {}}),
        call("tools/call", {"name": "get_prompt", "arguments": {"name": "fast"}, "_meta": {"progressToken": 9}}),
        call("tools/call", {"name": "save_memory", "arguments": {"content": ""}}),
        call("tools/call", {"name": "get_memory", "arguments": {"id": "no-such-memory"}}),
        call("tools/call", {"name": "search_memories", "arguments": {"query": "nothing here"}}),
        call("tools/call", {"name": "delete_prompt", "arguments": {"name": "missing"}}),
    ]


@pytest.fixture
def sdk_only(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The same server with the fast path off: every request takes the SDK's transport."""
    server = LiveServer(database_url, env={"VIBEXP_MCP_FAST_PATH": "false"}).start(tmp_path, timeout=120)
    try:
        yield server
    finally:
        server.stop()


async def _seed(db: async_sessionmaker[AsyncSession], account: Account) -> None:
    async with session_scope(db) as session:
        await prompts.create(
            session, tenant_id=account.tenant.id, data=PromptCreate(name="fast", content="Explain {{file}}.")
        )
        await artifacts.create(
            session,
            tenant_id=account.tenant.id,
            data=ArtifactCreate(project="fp", slug="notes", title="Notes", content="# Notes"),
        )


async def _key(client: httpx.AsyncClient, url: str, **fields: Any) -> dict[str, str]:
    """Headers of a new key of the client's account (minted through the REST API) with these fields."""
    response = await client.post(url + "/api/v1/api-keys", json={"name": "other", **fields})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def test_fast_path_answers_exactly_as_the_sdk_transport(
    server: LiveServer, sdk_only: LiveServer, db: async_sessionmaker[AsyncSession], account: Account
) -> None:
    await _seed(db, account)
    async with httpx.AsyncClient(timeout=30, headers=account.headers | HEADERS) as client:
        # A key without the scopes a call needs (refused as a tool error or a JSON-RPC error), and a key that asks
        # before a destructive tool runs (its calls go through the handshake door on either server).
        narrow = await _key(client, server.url, scopes=["memories:read"])
        confirming = await _key(client, server.url, confirm_destructive=True)
        keyed = [
            (call, extra | narrow)
            for call, extra in _calls()
            if call["method"] in ("tools/call", "tools/list", "prompts/get", "resources/read", "resources/list")
        ]
        confirm_calls = [(call, extra | confirming) for call, extra in _calls() if call["method"] == "tools/call"]
        for body, extra in [*_calls(), *keyed, *confirm_calls]:
            fast = await client.post(server.url + MCP_PATH, json=body, headers=extra)
            sdk = await client.post(sdk_only.url + MCP_PATH, json=body, headers=extra)
            assert (fast.status_code, fast.headers["content-type"]) == (sdk.status_code, sdk.headers["content-type"])
            assert fast.text == sdk.text, (body, extra.keys())


async def test_a_stateless_tool_call_builds_no_sdk_transport(
    database_url: str, tmp_path: Path, db: async_sessionmaker[AsyncSession], account: Account
) -> None:
    await _seed(db, account)
    server = LiveServer(database_url, env={"VIBEXP_LOG_LEVEL": "debug"}).start(tmp_path, timeout=120)
    try:
        async with httpx.AsyncClient(timeout=30, headers=account.headers | HEADERS) as client:
            before = server.log().count(SDK_TRANSPORT_LINE)
            for _ in range(3):
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_prompt"}}
                body["params"]["arguments"] = {"name": "fast"}
                answer = await client.post(server.url + MCP_PATH, json=body)
                assert answer.status_code == 200 and answer.json()["result"]["isError"] is False
            time.sleep(0.2)  # let the log catch up
            assert server.log().count(SDK_TRANSPORT_LINE) == before
            # initialize still goes to the SDK (its version negotiation is the SDK's), and so is seen in the log.
            init = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            }
            assert (await client.post(server.url + MCP_PATH, json=init)).status_code == 200
            time.sleep(0.2)
            assert server.log().count(SDK_TRANSPORT_LINE) == before + 1
    finally:
        server.stop()


#: What legitimately differs between two writes of the same request (each server makes its own row or revision).
_VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r'\\?"(version|etag)\\?":\s*(\\?"[^"\\]*\\?"|\d+)'), r'"\1":"<n>"'),
]


def _normalised(answer: httpx.Response) -> str:
    text = answer.text
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


async def test_every_read_and_write_an_agent_makes_answers_as_the_sdk_transport(
    server: LiveServer, sdk_only: LiveServer, db: async_sessionmaker[AsyncSession], account: Account
) -> None:
    """Each call goes to the fast path, then the same call to the SDK's transport (same database, same tenant):
    the answers are the same but for the ids, times and revision numbers a second write makes its own."""
    await _seed(db, account)

    def tool(tool_name: str, /, **arguments: Any) -> dict[str, Any]:
        params = {"name": tool_name, "arguments": arguments}
        return {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}

    async with httpx.AsyncClient(timeout=30, headers=account.headers | HEADERS) as client:
        seeded = await client.post(sdk_only.url + MCP_PATH, json=tool("save_memory", content="seeded note"))
        memory_id = seeded.json()["result"]["structuredContent"]["id"]
        calls = [
            tool("save_memory", content="The fast path answers agents", tags=["fp"], project="bench"),
            tool("list_memories", tag="fp"),
            tool("search_memories", query="fast path"),
            tool("get_memory", id=memory_id),
            tool("update_memory", id=memory_id, tags=["fp", "updated"]),
            tool("get_memory", id="no-such-memory"),
            tool("save_artifact", project="fp", slug="notes", content="# Notes"),
            tool("get_artifact", project="fp", slug="notes"),
            tool("list_artifacts", project="fp"),
            tool("list_prompts"),
            tool("update_prompt", name="fast", content="Explain {{file}} briefly."),
            tool("create_prompt", name="fast", content="taken"),
            {"jsonrpc": "2.0", "id": 4, "method": "resources/list"},
            {"jsonrpc": "2.0", "id": 5, "method": "resources/read", "params": {"uri": "artifact://fp/notes"}},
        ]
        for body in calls:
            fast = await client.post(server.url + MCP_PATH, json=body)
            sdk = await client.post(sdk_only.url + MCP_PATH, json=body)
            assert (fast.status_code, fast.headers["content-type"]) == (sdk.status_code, sdk.headers["content-type"])
            assert _normalised(fast) == _normalised(sdk), body


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_prompt","arguments":{}}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get\\ud800prompt"}}',  # from_json refuses
        b'[{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"x"}}]',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"artifact://a/b"}}',
        b"not json",
        b"[" * 10_000 + b"]" * 10_000,
    ],
)
async def test_the_front_door_reads_and_parses_the_body_once_and_names_it_as_before(body: bytes) -> None:
    """The front door parses the body with the SDK transport's parser and hands the parse on (the fast path reads
    and parses nothing again); the usage action is what ``mcp_action`` names from the raw body, also for a body that
    parser refuses and Python's ``json`` takes."""
    pending: list[Message] = [{"type": "http.request", "body": body[:5], "more_body": True}]
    pending.append({"type": "http.request", "body": body[5:], "more_body": False})

    async def receive() -> Message:
        return pending.pop(0)

    usage = RequestUsage(tool_type="other")
    read, parsed, replay = await McpFrontDoor._name_action(usage, receive)
    assert read == body and usage.action == mcp_action(body)
    if parse_body(body) is UNPARSED:
        assert parsed is UNPARSED
    else:
        assert parsed == parse_body(body)
    assert await replay() == {"type": "http.request", "body": body, "more_body": False}
    scope: dict[str, Any] = {}
    remember_body(scope, read, parsed)
    assert read_body(scope) == (body, parsed)
