"""MCP shows a key what it may do, over real HTTP with the SDK client, on both of the server's paths (the SDK's
transport and the single-request fast path, ``mode="legacy"``): ``tools/list`` lists only the tools the key's scopes
allow, with truthful annotations; a call of another tool is a tool error naming the scope and changes nothing;
``prompts/*`` need ``prompts:read`` and ``resources/*`` ``artifacts:read``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcpkit import READ_TOOLS, connect, mcp_errors, ok, tool_error

from helpers.factories import Account
from vibexp.api.mcp.errors import FORBIDDEN
from vibexp.api.mcp.tools import TOOL_NAMES, TOOL_SCOPES

MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])


async def _mint(rest: httpx.AsyncClient, account: Account, scopes: list[str]) -> str:
    response = await rest.post(
        "/api/v1/api-keys", json={"name": "mcp-scoped", "scopes": scopes}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def test_every_tool_has_a_scope_and_read_tools_are_read_only_hinted() -> None:
    assert set(TOOL_SCOPES) == set(TOOL_NAMES)
    assert len(set(TOOL_NAMES)) == len(TOOL_NAMES)
    # The read shorthand grants exactly the tools whose scope is a :read one, and there are some.
    assert READ_TOOLS and {name for name, scope in TOOL_SCOPES.items() if scope.endswith(":read")} == set(READ_TOOLS)


@MODES
async def test_a_read_only_key_sees_only_reading_tools(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, mode: Any
) -> None:
    key = await _mint(rest, account, ["read"])
    async with connect(mcp_url, key, mode=mode) as mcp:
        tools = (await mcp.list_tools()).tools
    assert {t.name for t in tools} == set(READ_TOOLS)
    assert all(t.annotations is not None and t.annotations.read_only_hint for t in tools)
    async with connect(mcp_url, account.key, mode=mode) as mcp:
        assert {t.name for t in (await mcp.list_tools()).tools} == set(TOOL_NAMES)


@MODES
async def test_a_memories_key_sees_only_memory_tools(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, mode: Any
) -> None:
    key = await _mint(rest, account, ["memories:write"])
    async with connect(mcp_url, key, mode=mode) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert names == {name for name in TOOL_NAMES if "memor" in name}
        saved = await ok(mcp, "save_memory", {"content": "the user prefers tabs"})
        assert (await ok(mcp, "get_memory", {"id": saved["id"]}))["content"] == "the user prefers tabs"


@MODES
async def test_a_call_outside_the_scopes_is_a_tool_error_naming_the_scope(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, mode: Any
) -> None:
    key = await _mint(rest, account, ["read"])
    async with connect(mcp_url, key, mode=mode) as mcp:
        text = await tool_error(mcp, "save_memory", {"content": "must not be stored"})
        assert text.startswith("insufficient_scope:") and "'memories:write'" in text, text
        # Refused before its arguments are looked at: bad arguments still name the scope, not the arguments.
        text = await tool_error(mcp, "create_prompt", {"name": "bad name!"})
        assert "'prompts:write'" in text, text
        assert "'artifacts:write'" in await tool_error(mcp, "delete_artifact", {"project": "p", "slug": "s"})
    listed = await rest.get("/api/v1/memories", headers=account.headers)
    assert listed.json()["items"] == []


@MODES
async def test_prompts_need_prompts_read_and_resources_need_artifacts_read(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, mode: Any
) -> None:
    made = await rest.post(
        "/api/v1/prompts", json={"name": "greet", "content": "Hello {{who}}"}, headers=account.headers
    )
    assert made.status_code == 201, made.text
    key = await _mint(rest, account, ["memories:read"])
    async with connect(mcp_url, key, mode=mode) as mcp:
        for request, scope in (
            (mcp.list_prompts(), "prompts:read"),
            (mcp.get_prompt("greet", {"who": "you"}), "prompts:read"),
            (mcp.list_resources(), "artifacts:read"),
            (mcp.list_resource_templates(), "artifacts:read"),
            (mcp.read_resource("artifact://p/s"), "artifacts:read"),
        ):
            with pytest.raises((MCPError, BaseExceptionGroup)) as raised:
                await request
            [error] = mcp_errors(raised.value)
            assert error.error.code == FORBIDDEN
            assert error.error.data == {"code": "insufficient_scope", "scope": scope}
            assert scope in error.error.message
    reader = await _mint(rest, account, ["prompts:read", "artifacts:read"])
    async with connect(mcp_url, reader, mode=mode) as mcp:
        assert [p.name for p in (await mcp.list_prompts()).prompts] == ["greet"]
        assert (await mcp.list_resources()).resources == []
