"""The MCP tools over real HTTP with the official SDK client: the catalogue, every tool, and round trips between
MCP and REST (what one tool writes, the other reads)."""

from __future__ import annotations

import httpx
from mcpkit import connect, ok

from helpers.factories import Account

DESIGN_TOOLS = {
    "list_prompts",
    "get_prompt",
    "create_prompt",
    "update_prompt",
    "delete_prompt",
    "list_artifacts",
    "get_artifact",
    "save_artifact",
    "delete_artifact",
    "list_memories",
    "search_memories",
    "save_memory",
    "get_memory",
    "update_memory",
    "delete_memory",
}
READ_ONLY = {
    "list_prompts",
    "get_prompt",
    "list_artifacts",
    "get_artifact",
    "list_memories",
    "search_memories",
    "get_memory",
}
DESTRUCTIVE = {"update_prompt", "delete_prompt", "save_artifact", "delete_artifact", "update_memory", "delete_memory"}


async def test_catalogue_has_every_design_tool_with_schemas_and_annotations(mcp_url: str, account: Account) -> None:
    async with connect(mcp_url, account.key) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        assert set(tools) == DESIGN_TOOLS
        for name, tool in tools.items():
            assert tool.description and len(tool.description) > 30, name
            assert tool.input_schema["type"] == "object", name
            assert tool.output_schema is not None and tool.output_schema.get("type", "object") == "object", name
            ann = tool.annotations
            assert ann is not None, name
            assert ann.read_only_hint is (name in READ_ONLY), name
            assert ann.destructive_hint is (name in DESTRUCTIVE), name
            assert ann.idempotent_hint is not None, name
            assert ann.open_world_hint is False, name
        # The limits of the REST schemas are in the input schemas.
        create = tools["create_prompt"].input_schema["properties"]
        assert create["name"]["maxLength"] == 128 and "pattern" in create["name"]
        assert create["content"]["maxLength"] == 100_000
        assert tools["create_prompt"].input_schema["required"] == ["name", "content"]
        limit = tools["list_memories"].input_schema["properties"]["limit"]
        assert limit["minimum"] == 1 and limit["maximum"] == 200
        assert tools["save_artifact"].input_schema["properties"]["project"]["pattern"]


async def test_prompt_tools_round_trip_with_rest(mcp_url: str, rest: httpx.AsyncClient, account: Account) -> None:
    async with connect(mcp_url, account.key) as mcp:
        created = await ok(
            mcp,
            "create_prompt",
            {"name": "code-review", "content": "Review {{file}} for {{concern}}", "tags": ["dev"], "description": "CR"},
        )
        assert created["version"] == 1 and created["tags"] == ["dev"]

        # REST sees what MCP wrote ...
        resp = await rest.get(f"/api/v1/prompts/{created['id']}", headers=account.headers)
        assert resp.status_code == 200 and resp.json()["content"] == "Review {{file}} for {{concern}}"
        # ... and MCP sees what REST changes.
        resp = await rest.put(
            f"/api/v1/prompts/{created['id']}",
            headers=account.headers,
            json={"content": "Check {{file}} for {{concern}}"},
        )
        assert resp.status_code == 200

        got = await ok(mcp, "get_prompt", {"name": "code-review", "arguments": {"file": "app.py", "concern": "races"}})
        assert got["arguments"] == ["file", "concern"]
        assert got["rendered"] == "Check app.py for races"
        assert got["version"] == 2

        listed = await ok(mcp, "list_prompts", {"tag": "dev"})
        assert [p["name"] for p in listed["items"]] == ["code-review"] and listed["next_cursor"] is None
        assert (await ok(mcp, "list_prompts", {"query": "check app"}))["items"] == []
        assert [p["name"] for p in (await ok(mcp, "list_prompts", {"query": "CHECK"}))["items"]] == ["code-review"]

        updated = await ok(mcp, "update_prompt", {"name": "code-review", "new_name": "review", "expected_version": 2})
        assert updated["name"] == "review" and updated["version"] == 3
        resp = await rest.get(f"/api/v1/prompts/{created['id']}", headers=account.headers)
        assert resp.json()["name"] == "review"

        assert await ok(mcp, "delete_prompt", {"name": "review"}) == {"deleted": True, "what": "prompt 'review'"}
        assert (await rest.get(f"/api/v1/prompts/{created['id']}", headers=account.headers)).status_code == 404


async def test_artifact_tools_round_trip_with_rest(mcp_url: str, rest: httpx.AsyncClient, account: Account) -> None:
    async with connect(mcp_url, account.key) as mcp:
        resp = await rest.post(
            "/api/v1/artifacts",
            headers=account.headers,
            json={
                "project": "web",
                "slug": "config.json",
                "title": "Config",
                "content": '{"a": 1}',
                "content_type": "application/json",
            },
        )
        assert resp.status_code == 201

        got = await ok(mcp, "get_artifact", {"project": "web", "slug": "config.json"})
        assert got["content"] == '{"a": 1}' and got["content_type"] == "application/json"

        # save_artifact replaces the content of an existing artifact and keeps what it does not name.
        saved = await ok(mcp, "save_artifact", {"project": "web", "slug": "config.json", "content": '{"a": 2}'})
        assert saved["version"] == 2 and saved["title"] == "Config" and saved["content_type"] == "application/json"
        resp = await rest.get("/api/v1/artifacts/web/config.json", headers=account.headers)
        assert resp.json()["content"] == '{"a": 2}'

        # ... and creates a new one, defaulting the title to the slug.
        new = await ok(mcp, "save_artifact", {"project": "web", "slug": "notes", "content": "# Notes", "tags": ["x"]})
        assert new["version"] == 1 and new["title"] == "notes" and new["content_type"] == "text/markdown"

        page = await ok(mcp, "list_artifacts", {"project": "web"})
        assert [(a["slug"], a["uri"]) for a in page["items"]] == [
            ("config.json", "artifact://web/config.json"),
            ("notes", "artifact://web/notes"),
        ]
        assert "content" not in page["items"][0]
        assert [a["slug"] for a in (await ok(mcp, "list_artifacts", {"tag": "x"}))["items"]] == ["notes"]
        assert (await ok(mcp, "list_artifacts", {"project": "other"}))["items"] == []

        assert (await ok(mcp, "delete_artifact", {"project": "web", "slug": "notes"}))["deleted"] is True
        assert (await rest.get("/api/v1/artifacts/web/notes", headers=account.headers)).status_code == 404


async def test_memory_tools_round_trip_with_rest(mcp_url: str, rest: httpx.AsyncClient, account: Account) -> None:
    async with connect(mcp_url, account.key) as mcp:
        first = await ok(mcp, "save_memory", {"content": "The user prefers tabs over spaces", "tags": ["style"]})
        second = await ok(mcp, "save_memory", {"content": "Deploys happen on Fridays"})
        resp = await rest.post("/api/v1/memories", headers=account.headers, json={"content": "Likes TABS in Go too"})
        assert resp.status_code == 201
        third = resp.json()

        resp = await rest.get(f"/api/v1/memories/{first['id']}", headers=account.headers)
        assert resp.status_code == 200 and resp.json()["tags"] == ["style"]
        assert (await ok(mcp, "get_memory", {"id": third["id"]}))["content"] == "Likes TABS in Go too"

        found = await ok(mcp, "search_memories", {"query": "tabs"})
        assert {m["id"] for m in found["items"]} == {first["id"], third["id"]}
        assert [m["id"] for m in (await ok(mcp, "search_memories", {"query": "tabs", "tag": "style"}))["items"]] == [
            first["id"]
        ]

        # Pagination: one per page, following next_cursor, visits every memory once.
        seen: list[str] = []
        cursor = None
        while True:
            page = await ok(mcp, "list_memories", {"limit": 1, **({"cursor": cursor} if cursor else {})})
            seen += [m["id"] for m in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [first["id"], second["id"], third["id"]]

        updated = await ok(mcp, "update_memory", {"id": second["id"], "content": "Deploys happen on Thursdays"})
        assert updated["version"] == 2 and updated["tags"] == []
        resp = await rest.get(f"/api/v1/memories/{second['id']}", headers=account.headers)
        assert resp.json()["content"] == "Deploys happen on Thursdays"

        assert (await ok(mcp, "delete_memory", {"id": second["id"]}))["deleted"] is True
        assert (await rest.get(f"/api/v1/memories/{second['id']}", headers=account.headers)).status_code == 404
