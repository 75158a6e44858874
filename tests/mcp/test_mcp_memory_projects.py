"""The memory tools' optional ``project`` over real HTTP with the official SDK client, checked against REST."""

from __future__ import annotations

import httpx
from mcpkit import connect, ok, tool_error

from helpers.factories import Account


async def test_memory_tools_take_a_project(mcp_url: str, rest: httpx.AsyncClient, account: Account) -> None:
    async with connect(mcp_url, account.key) as mcp:
        web = await ok(mcp, "save_memory", {"content": "web deploys on Fridays", "project": "web"})
        loose = await ok(mcp, "save_memory", {"content": "api deploys on Fridays"})
        assert web["project"] == "web" and loose["project"] is None
        resp = await rest.get("/api/v1/memories", params={"project": "web"}, headers=account.headers)
        assert [m["id"] for m in resp.json()["items"]] == [web["id"]]

        listed = await ok(mcp, "list_memories", {"project": "web"})
        assert [m["id"] for m in listed["items"]] == [web["id"]]
        assert len((await ok(mcp, "list_memories", {}))["items"]) == 2
        found = await ok(mcp, "search_memories", {"query": "fridays", "project": "web"})
        assert [m["id"] for m in found["items"]] == [web["id"]]
        assert (await ok(mcp, "search_memories", {"query": "fridays", "project": "nope"}))["items"] == []

        moved = await ok(mcp, "update_memory", {"id": loose["id"], "project": "api"})
        assert moved["project"] == "api" and moved["content"] == "api deploys on Fridays"
        resp = await rest.get(f"/api/v1/memories/{loose['id']}", headers=account.headers)
        assert resp.json()["project"] == "api"

        schema = (await mcp.list_tools()).tools
        by_name = {t.name: t.input_schema["properties"] for t in schema}
        for name in ("save_memory", "list_memories", "search_memories", "update_memory"):
            assert "project" in by_name[name], name
        # A project name that an artifact could not have is refused before any write.
        assert "project" in await tool_error(mcp, "save_memory", {"content": "x", "project": "Not/Valid"})
        assert "project" in await tool_error(mcp, "list_memories", {"project": "a b"})
    resp = await rest.get("/api/v1/memories", headers=account.headers)
    assert len(resp.json()["items"]) == 2
