"""Prompt versions over MCP, with the official SDK client over real HTTP: ``prompts/get`` serves the version
labelled ``production`` (else the latest); the ``get_prompt`` tool takes ``label`` / ``version``, answering the same
on the SDK transport and on the fast path (``vibexp.api.mcp.fastpath``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp_types import TextContent
from mcpkit import MCP_PATH, connect, ok, tool_error

from helpers.factories import Account
from helpers.servers import LiveServer

URL = "/api/v1/prompts"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def _three_versions(rest: httpx.AsyncClient, account: Account, name: str = "greet") -> str:
    created = await rest.post(URL, json={"name": name, "content": "v1 {{who}}"}, headers=account.headers)
    assert created.status_code == 201, created.text
    prompt_id: str = created.json()["id"]
    for text in ("v2 {{who}}", "v3 {{who}} and {{when}}"):
        assert (await rest.put(f"{URL}/{prompt_id}", json={"content": text}, headers=account.headers)).is_success
    return prompt_id


async def _label(rest: httpx.AsyncClient, account: Account, prompt_id: str, version: int) -> None:
    moved = await rest.put(f"{URL}/{prompt_id}/labels/production", json={"version": version}, headers=account.headers)
    assert moved.status_code == 200, moved.text


async def test_prompts_get_serves_production_else_latest(
    mcp_url: str, account: Account, rest: httpx.AsyncClient
) -> None:
    prompt_id = await _three_versions(rest, account)
    async with connect(mcp_url, account.key, mode="legacy") as mcp:
        latest = await mcp.get_prompt("greet", {"who": "Ann", "when": "now"})
        assert isinstance(latest.messages[0].content, TextContent)
        assert latest.messages[0].content.text == "v3 Ann and now"
        listed = {p.name: p for p in (await mcp.list_prompts()).prompts}
        assert [a.name for a in listed["greet"].arguments or []] == ["who", "when"]
        await _label(rest, account, prompt_id, 1)
        # prompts/list describes what prompts/get serves: version 1 takes only {{who}}.
        listed = {p.name: p for p in (await mcp.list_prompts()).prompts}
        assert [a.name for a in listed["greet"].arguments or []] == ["who"]
        prod = await mcp.get_prompt("greet", {"who": "Ann"})
        assert isinstance(prod.messages[0].content, TextContent) and prod.messages[0].content.text == "v1 Ann"
        # Rollforward and removal are seen at once (nothing is cached).
        await _label(rest, account, prompt_id, 2)
        prod = await mcp.get_prompt("greet", {"who": "Ann"})
        assert isinstance(prod.messages[0].content, TextContent) and prod.messages[0].content.text == "v2 Ann"
        assert (await rest.delete(f"{URL}/{prompt_id}/labels/production", headers=account.headers)).status_code == 204
        back = await mcp.get_prompt("greet", {"who": "Ann", "when": "later"})
        assert isinstance(back.messages[0].content, TextContent) and back.messages[0].content.text == "v3 Ann and later"


async def test_get_prompt_tool_by_label_and_version(mcp_url: str, account: Account, rest: httpx.AsyncClient) -> None:
    prompt_id = await _three_versions(rest, account)
    await _label(rest, account, prompt_id, 2)
    async with connect(mcp_url, account.key, mode="legacy") as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        schema = tools["get_prompt"].input_schema["properties"]
        assert {"label", "version"} <= set(schema) and tools["get_prompt"].annotations.read_only_hint is True
        latest = await ok(mcp, "get_prompt", {"name": "greet"})
        assert (latest["version"], latest["content"]) == (3, "v3 {{who}} and {{when}}")
        by_version = await ok(mcp, "get_prompt", {"name": "greet", "version": 1, "arguments": {"who": "Bo"}})
        assert (by_version["version"], by_version["rendered"], by_version["arguments"]) == (1, "v1 Bo", ["who"])
        by_label = await ok(mcp, "get_prompt", {"name": "greet", "label": "production"})
        assert (by_label["version"], by_label["content"], by_label["id"]) == (2, "v2 {{who}}", prompt_id)

        assert "either label or version" in await tool_error(
            mcp, "get_prompt", {"name": "greet", "label": "production", "version": 1}
        )
        assert "staging" in await tool_error(mcp, "get_prompt", {"name": "greet", "label": "staging"})
        assert "no version 9" in await tool_error(mcp, "get_prompt", {"name": "greet", "version": 9})
        assert "invalid_input" in await tool_error(mcp, "get_prompt", {"name": "greet", "label": "Not A Slug"})
        assert "invalid_input" in await tool_error(mcp, "get_prompt", {"name": "greet", "version": 0})
        assert "invalid_input" in await tool_error(mcp, "get_prompt", {"name": "greet", "version": "two"})
        for too_big in (2**31, 2**63):  # past the column (issue 26): refused by the core's VersionNumber, not a 500
            assert "invalid_input" in await tool_error(mcp, "get_prompt", {"name": "greet", "version": too_big})


async def test_mcp_writes_are_versions(mcp_url: str, account: Account, rest: httpx.AsyncClient) -> None:
    async with connect(mcp_url, account.key, mode="legacy") as mcp:
        created = await ok(mcp, "create_prompt", {"name": "viamcp", "content": "one"})
        await ok(mcp, "update_prompt", {"name": "viamcp", "content": "two", "expected_version": 1})
        assert "precondition_failed" in await tool_error(
            mcp, "update_prompt", {"name": "viamcp", "content": "lost", "expected_version": 1}
        )
    listed = await rest.get(f"{URL}/{created['id']}/versions", headers=account.headers)
    assert [(v["version"], v["content"]) for v in listed.json()["items"]] == [(2, "two"), (1, "one")]


@pytest.fixture
def sdk_only(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The same server with the fast path off: every request takes the SDK's transport."""
    server = LiveServer(database_url, env={"VIBEXP_MCP_FAST_PATH": "false"}).start(tmp_path, timeout=120)
    try:
        yield server
    finally:
        server.stop()


async def test_get_prompt_with_label_or_version_same_on_fast_path_and_sdk(
    server: LiveServer, sdk_only: LiveServer, account: Account, rest: httpx.AsyncClient
) -> None:
    prompt_id = await _three_versions(rest, account, name="fastv")
    await _label(rest, account, prompt_id, 1)
    calls: list[dict[str, Any]] = [
        {"name": "fastv", "version": 2},
        {"name": "fastv", "version": 2, "arguments": {"who": "x"}},
        {"name": "fastv", "label": "production"},
        {"name": "fastv", "label": "production", "version": 1},
        {"name": "fastv", "label": "nope"},
        {"name": "fastv", "version": 0},
    ]
    async with httpx.AsyncClient(timeout=30, headers=account.headers | HEADERS) as client:
        for arguments in calls:
            body = {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "get_prompt", "arguments": arguments},
            }
            fast = await client.post(server.url + MCP_PATH, json=body)
            sdk = await client.post(sdk_only.url + MCP_PATH, json=body)
            assert fast.status_code == sdk.status_code == 200
            assert fast.json() == sdk.json(), arguments
            result = fast.json()["result"]
            if "version" in arguments and "label" not in arguments and arguments["version"] == 2:
                assert result["structuredContent"]["content"] == "v2 {{who}}", result
            if arguments == {"name": "fastv", "label": "production"}:
                assert result["structuredContent"]["version"] == 1, result
        prompts_get = {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "prompts/get",
            "params": {"name": "fastv", "arguments": {"who": "y"}},
        }
        fast = await client.post(server.url + MCP_PATH, json=prompts_get)
        sdk = await client.post(sdk_only.url + MCP_PATH, json=prompts_get)
        assert fast.json() == sdk.json()
        assert fast.json()["result"]["messages"][0]["content"]["text"] == "v1 y"
