"""The server declares only what it delivers, and declares the same thing however it is asked.

VibeXP sends no change notifications yet (no ``notifications/*/list_changed``, no ``subscriptions/listen`` stream,
no ``resources/subscribe``), so every path and protocol revision must say ``listChanged: false`` and
``subscribe: false``: the SDK's own client (it negotiates 2026-07-28 and reads ``server/discover``), the same client
in handshake mode (``initialize``), a raw 2025-06-18 ``initialize`` POST and a raw 2026-07-28 ``server/discover``
POST, each against the server with the fast path on and with it off. A client that asks to listen anyway is told
plainly that the method is not served, on both eras.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_PROTOCOL_VERSION_HEADER
from mcp_types import CLIENT_CAPABILITIES_META_KEY, METHOD_NOT_FOUND, PROTOCOL_VERSION_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from mcpkit import MCP_PATH, connect, mcp_errors

from helpers.factories import Account
from helpers.servers import LiveServer

#: What VibeXP can honestly promise today: the three catalogues, and no change notifications of any kind.
DECLARED = {
    "prompts": {"listChanged": False},
    "resources": {"listChanged": False, "subscribe": False},
    "tools": {"listChanged": False},
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
            assert capabilities == DECLARED, f"{where}, {label}: {capabilities}"


async def test_asking_to_listen_is_refused_as_a_method_the_server_does_not_serve(
    mcp_url: str, account: Account
) -> None:
    """``listChanged: false`` is the promise; a client that listens anyway gets -32601 at once, not a stream that
    is acknowledged and then never speaks."""
    async with connect(mcp_url, account.key) as client:
        assert client.protocol_version == MODERN
        with pytest.raises(BaseException) as refused:
            async with asyncio.timeout(30):
                async with client.listen(prompts_list_changed=True, tools_list_changed=True) as subscription:
                    pytest.fail(f"the server acknowledged a stream it never feeds: {subscription.honored}")
        errors = mcp_errors(refused.value)
        assert errors, repr(refused.value)
        assert errors[0].error.code == METHOD_NOT_FOUND and errors[0].error.message == "Method not found"
        assert (await client.list_prompts()).prompts is not None  # the session is fine afterwards

    # The handshake era's way to ask, resources/subscribe, is not served either.
    async with httpx.AsyncClient(timeout=30, headers=account.headers | JSONRPC_HEADERS) as http:
        subscribe = {"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": "artifact://p/s"}}
        answer = await http.post(mcp_url, json=subscribe, headers={MCP_PROTOCOL_VERSION_HEADER: "2025-06-18"})
        assert answer.status_code == 200
        assert answer.json()["error"]["code"] == METHOD_NOT_FOUND
