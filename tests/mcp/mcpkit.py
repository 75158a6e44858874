"""Helpers for the MCP tests: an SDK client session over real HTTP, and unwrapping tool results and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ElicitRequestFormParams, ElicitResult, Implementation, TextContent

from helpers.factories import Account
from mcp import Client
from vibexp.api.mcp.tools import TOOL_NAMES, TOOL_SCOPES
from vibexp.core.access import READ_ONLY, expand

__all__ = [
    "MCP_PATH",
    "READ_TOOLS",
    "SERVICE_HOST",
    "Person",
    "confirming_key",
    "connect",
    "mcp_errors",
    "ok",
    "tool_error",
]

MCP_PATH = "/mcp/v1/common"
#: The Host a client inside a cluster would send (the Service name), allowed through VIBEXP_MCP_ALLOWED_HOSTS.
SERVICE_HOST = "vibexp.vibexp.svc:8000"
#: What a ``["read"]`` key may call, in catalogue order: the tools whose scope the ``read`` shorthand grants.
READ_TOOLS = [name for name in TOOL_NAMES if TOOL_SCOPES[name] in expand([READ_ONLY])]


class Person:
    """The person behind a client that declares form elicitation (``connect(..., person=...)``): answers each
    confirmation form as told, and remembers what they were asked."""

    def __init__(self, action: str = "accept", content: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        self.action = action
        self.content = {"confirm": True} if content is None and action == "accept" else content
        self.delay = delay
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestFormParams)
        assert params.requested_schema["required"] == ["confirm"]
        self.asked.append(params.message)
        if self.delay:
            await anyio.sleep(self.delay)
        return ElicitResult(action=self.action, content=self.content)  # type: ignore[arg-type]


@asynccontextmanager
async def connect(
    url: str,
    key: str,
    *,
    client_name: str = "vibexp-tests",
    mode: Any = "auto",
    headers: dict[str, str] | None = None,
    person: Person | None = None,
) -> AsyncIterator[Client]:
    """An SDK client session over streamable HTTP with the key (or an OAuth access token) in the Authorization
    header; with ``person``, the client declares form elicitation and ``person`` answers.

    Not a fixture: the client's anyio task group must be entered and left in the same task, and pytest-asyncio
    runs fixture set-up and tear-down in different ones.
    """
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}", **(headers or {})}, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        info = Implementation(name=client_name, version="1.0")
        async with Client(transport, mode=mode, client_info=info, elicitation_callback=person) as client:
            yield client


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; its structured output."""
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def tool_error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """Call a tool that must fail as a tool error (isError, readable text); that text."""
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert result.is_error, result.structured_content
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


async def confirming_key(rest: httpx.AsyncClient, account: Account) -> str:
    """A new key of ``account`` with ``confirm_destructive`` (minted through the REST API)."""
    body = {"name": "confirming", "confirm_destructive": True}
    response = await rest.post("/api/v1/api-keys", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def mcp_errors(exc: BaseException) -> list[MCPError]:
    """Every MCPError in ``exc``, looking inside (nested) exception groups."""
    if isinstance(exc, MCPError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [e for sub in exc.exceptions for e in mcp_errors(sub)]
    return []


#: The limits of tests/mcp/conftest.py's ``capped`` server: two streams per key, three per process, idle streams
#: end after ``CAPPED_IDLE_SECONDS``, a GET stream's keep-alive every ``CAPPED_KEEPALIVE_SECONDS``.
CAPPED_IDLE_SECONDS = 8.0
CAPPED_KEEPALIVE_SECONDS = 1.0
