"""The server declares only what it delivers, and declares the same thing however a revision asks.

VibeXP delivers change notifications on 2026-07-28 ``subscriptions/listen`` streams (``vibexp.api.mcp.live``,
tests/mcp/test_mcp_live.py), so that revision declares ``listChanged`` for prompts, resources and tools and
``resources.subscribe``; the handshake era's channel, the GET event stream, delivers the three list-changed
notifications (tests/mcp/test_mcp_legacy_stream*.py) but it has no ``resources/subscribe``, so ``initialize``
declares ``listChanged`` true and ``subscribe`` false. Checked with the SDK's own client (it
negotiates 2026-07-28 and reads ``server/discover``), the same client in handshake mode (``initialize``), a raw
2025-06-18 ``initialize`` POST and a raw 2026-07-28 ``server/discover`` POST, each against the server with the fast
path on and with it off. A handshake-era client that asks to listen anyway is told plainly that the method is not
served; ``resources/subscribe`` is not served at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_PROTOCOL_VERSION_HEADER
from mcp_types import CLIENT_CAPABILITIES_META_KEY, METHOD_NOT_FOUND, PROTOCOL_VERSION_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from mcpkit import MCP_PATH, connect

from helpers.factories import Account
from helpers.servers import LiveServer
from vibexp.api.mcp.server import LIST_TTL_MS

#: What VibeXP delivers at 2026-07-28: the three catalogues, each with change notifications (listen streams).
DECLARED_MODERN = {
    "prompts": {"listChanged": True},
    "resources": {"listChanged": True, "subscribe": True},
    "tools": {"listChanged": True},
    "completions": {},
}
#: What it delivers to a handshake-era client: the catalogues, list-changed on the GET stream, no subscribe.
DECLARED_HANDSHAKE = {
    "prompts": {"listChanged": True},
    "resources": {"listChanged": True, "subscribe": False},
    "tools": {"listChanged": True},
    "completions": {},
}
JSONRPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
#: The revision the SDK's own client negotiates (NOTES.md, "Checked here on 2026-12-06").
MODERN = "2026-07-28"


def _modern(method: str, params: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """A raw 2026-07-28 request: the per-request envelope in ``_meta`` and the routing headers it must match."""
    meta = {PROTOCOL_VERSION_META_KEY: MODERN, CLIENT_CAPABILITIES_META_KEY: {}}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {}), "_meta": meta}}
    return body, {MCP_PROTOCOL_VERSION_HEADER: MODERN, MCP_METHOD_HEADER: method}


async def _declared(server: LiveServer, account: Account) -> dict[str, Any]:
    """The capabilities each way of asking sees, by a label naming the way."""
    url = server.url + MCP_PATH
    seen: dict[str, Any] = {}
    async with connect(url, account.key) as client:
        assert client.protocol_version == MODERN and MODERN in MODERN_PROTOCOL_VERSIONS
        seen[f"SDK client, {client.protocol_version}"] = client.server_capabilities
    async with connect(url, account.key, mode="legacy") as client:
        seen[f"SDK client, initialize {client.protocol_version}"] = client.server_capabilities
    seen = {label: caps.model_dump(mode="json", by_alias=True, exclude_none=True) for label, caps in seen.items()}

    async with httpx.AsyncClient(timeout=30, headers=account.headers | JSONRPC_HEADERS) as http:
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        }
        answer = await http.post(url, json=initialize)
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["protocolVersion"] == "2025-06-18"
        seen["raw initialize 2025-06-18"] = answer.json()["result"]["capabilities"]

        body, headers = _modern("server/discover")
        answer = await http.post(url, json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert MODERN in answer.json()["result"]["supportedVersions"]
        seen[f"raw server/discover {MODERN}"] = answer.json()["result"]["capabilities"]
    return seen


async def test_every_path_and_revision_declares_exactly_what_is_delivered(
    server: LiveServer, sdk_server: LiveServer, account: Account
) -> None:
    for where, live in (("fast path on", server), ("SDK transport only", sdk_server)):
        seen = await _declared(live, account)
        assert len(seen) == 4
        for label, capabilities in seen.items():
            declared = DECLARED_MODERN if MODERN in label else DECLARED_HANDSHAKE
            assert capabilities == declared, f"{where}, {label}: {capabilities}"


async def test_a_handshake_era_client_that_asks_to_listen_is_told_the_method_is_not_served(
    mcp_url: str, account: Account
) -> None:
    """At 2025-06-18 the channel is the GET stream; a listen request there gets -32601 at once, not a stream that is
    acknowledged and then never speaks. ``resources/subscribe`` (that era's way to ask) is not served."""
    async with httpx.AsyncClient(timeout=30, headers=account.headers | JSONRPC_HEADERS) as http:
        for request_id, method, params in (
            (2, "subscriptions/listen", {"notifications": {"promptsListChanged": True}}),
            (3, "resources/subscribe", {"uri": "artifact://p/s"}),
        ):
            body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            answer = await http.post(mcp_url, json=body, headers={MCP_PROTOCOL_VERSION_HEADER: "2025-06-18"})
            assert answer.status_code == 200, method
            assert answer.json()["error"]["code"] == METHOD_NOT_FOUND, (method, answer.json())
            assert answer.json()["error"]["message"] == "Method not found"


async def test_a_modern_client_that_asks_to_listen_is_acknowledged(mcp_url: str, account: Account) -> None:
    async with connect(mcp_url, account.key) as client:
        assert client.protocol_version == MODERN
        async with asyncio.timeout(30), client.listen(prompts_list_changed=True, tools_list_changed=True) as stream:
            assert stream.honored.prompts_list_changed and stream.honored.tools_list_changed
        # The session is fine afterwards; and lists may be kept for LIST_TTL_MS (notifications say when not).
        for listed in (await client.list_prompts(), await client.list_resources(), await client.list_tools()):
            assert listed.ttl_ms == LIST_TTL_MS > 0 and listed.cache_scope == "private"
