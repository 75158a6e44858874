"""MCP ``search_memories`` (and the list tools' ``query``) use the ranked full-text search of REST: word forms,
best first with a score, operator syntax read as plain words, an over-long query a readable tool error."""

from __future__ import annotations

from mcpkit import connect, ok, tool_error

from helpers.factories import Account


async def test_search_memories_is_ranked_full_text(mcp_url: str, account: Account) -> None:
    async with connect(mcp_url, account.key) as mcp:
        weak = await ok(mcp, "save_memory", {"content": "Deploys run on Tuesdays, among many other unrelated chores"})
        strong = await ok(mcp, "save_memory", {"content": "Deploying: deploy deploys", "tags": ["ops"]})
        await ok(mcp, "save_memory", {"content": "Prefers tabs"})
        found = await ok(mcp, "search_memories", {"query": "deployed"})
        assert [m["id"] for m in found["items"]] == [strong["id"], weak["id"]]
        assert found["items"][0]["score"] > found["items"][1]["score"] > 0
        tagged = await ok(mcp, "search_memories", {"query": "deploy", "tag": "ops"})
        assert [m["id"] for m in tagged["items"]] == [strong["id"]]
        for query in ['"deploy', "deploy*", "NEAR(deploy)", "-deploy", "(deploy OR", "AND OR NOT", "!!!"]:
            result = await ok(mcp, "search_memories", {"query": query})
            assert len(result["items"]) in (0, 2), query  # never an error; "near" and "!!!" find nothing
        paged = await ok(mcp, "search_memories", {"query": "deploy", "limit": 1})
        rest = await ok(mcp, "search_memories", {"query": "deploy", "cursor": paged["next_cursor"]})
        assert [m["id"] for m in paged["items"] + rest["items"]] == [strong["id"], weak["id"]]
        listed = await ok(mcp, "list_memories", {})
        assert all(m["score"] is None for m in listed["items"])
        prompt = await ok(mcp, "create_prompt", {"name": "deployer", "content": "Plan the deployment"})
        prompts = await ok(mcp, "list_prompts", {"query": "planned"})
        assert [p["id"] for p in prompts["items"]] == [prompt["id"]] and prompts["items"][0]["score"] > 0


async def test_an_over_long_query_is_a_tool_error(mcp_url: str, account: Account) -> None:
    async with connect(mcp_url, account.key) as mcp:
        text = await tool_error(mcp, "search_memories", {"query": "word " * 2_000})
        assert "query" in text and "1000" in text, text
