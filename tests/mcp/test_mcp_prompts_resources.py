"""Stored prompts as MCP prompts and artifacts as MCP resources, over real HTTP with the SDK client."""

from __future__ import annotations

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, TextContent, TextResourceContents
from mcpkit import connect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account
from vibexp.api.mcp.server import LIST_PAGE_SIZE
from vibexp.core.content import schemas
from vibexp.core.content.service import artifacts, prompts
from vibexp.core.db import session_scope


async def test_prompts_list_paginates_and_get_fills_arguments(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    resp = await rest.post(
        "/api/v1/prompts",
        headers=account.headers,
        json={
            "name": "summarize",
            "content": "Summarize {{ text }} in {{lang}}; keep {{lang}} terms",
            "description": "S",
        },
    )
    assert resp.status_code == 201
    # More than one page of prompts, made through the same core service the REST API uses.
    async with session_scope(db) as session:
        for i in range(LIST_PAGE_SIZE + 4):
            data = schemas.PromptCreate(name=f"p{i:03d}", content="plain text")
            await prompts.create(session, tenant_id=account.tenant.id, data=data)

    async with connect(mcp_url, account.key, mode="legacy") as mcp:
        first = await mcp.list_prompts()
        assert len(first.prompts) == LIST_PAGE_SIZE and first.next_cursor
        second = await mcp.list_prompts(cursor=first.next_cursor)
        assert second.next_cursor is None
        everything = {p.name: p for p in [*first.prompts, *second.prompts]}
        assert len(everything) == LIST_PAGE_SIZE + 5

        summarize = everything["summarize"]
        assert summarize.description == "S"
        assert [(a.name, a.required) for a in summarize.arguments or []] == [("text", True), ("lang", True)]
        assert everything["p000"].arguments == []

        result = await mcp.get_prompt("summarize", {"text": "the {{lang}} doc", "lang": "French"})
        assert result.description == "S"
        [message] = result.messages
        assert message.role == "user" and isinstance(message.content, TextContent)
        # One pass: a value containing a placeholder is inserted as is.
        assert message.content.text == "Summarize the {{lang}} doc in French; keep French terms"

        plain = await mcp.get_prompt("p001")
        assert isinstance(plain.messages[0].content, TextContent) and plain.messages[0].content.text == "plain text"

        with pytest.raises(MCPError) as missing:
            await mcp.get_prompt("summarize", {"text": "x"})
        assert missing.value.error.code == INVALID_PARAMS
        assert "lang" in missing.value.error.message

        with pytest.raises(MCPError) as unknown:
            await mcp.get_prompt("no-such-prompt")
        assert unknown.value.error.code == INVALID_PARAMS
        assert "no-such-prompt" in unknown.value.error.message

        with pytest.raises(MCPError) as bad_cursor:
            await mcp.list_prompts(cursor="***")
        assert bad_cursor.value.error.code == INVALID_PARAMS


async def test_artifacts_are_resources_with_their_mime_type(
    mcp_url: str, account: Account, rest: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    resp = await rest.post(
        "/api/v1/artifacts",
        headers=account.headers,
        json={
            "project": "api",
            "slug": "schema",
            "title": "Schema",
            "content": "{}",
            "content_type": "application/json",
        },
    )
    assert resp.status_code == 201
    async with session_scope(db) as session:
        for i in range(LIST_PAGE_SIZE + 2):
            data = schemas.ArtifactCreate(project="bulk", slug=f"a{i:03d}", title=f"A{i}", content="x" * i)
            await artifacts.create(session, tenant_id=account.tenant.id, data=data)

    async with connect(mcp_url, account.key) as mcp:
        templates = await mcp.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["artifact://{project}/{slug}"]

        first = await mcp.list_resources()
        assert len(first.resources) == LIST_PAGE_SIZE and first.next_cursor
        second = await mcp.list_resources(cursor=first.next_cursor)
        assert second.next_cursor is None
        listed = {r.uri: r for r in [*first.resources, *second.resources]}
        assert len(listed) == LIST_PAGE_SIZE + 3
        schema = listed["artifact://api/schema"]
        assert schema.mime_type == "application/json" and schema.title == "Schema" and schema.size == 2
        assert listed["artifact://bulk/a005"].mime_type == "text/markdown"

        read = await mcp.read_resource("artifact://api/schema")
        [content] = read.contents
        assert isinstance(content, TextResourceContents)
        assert (content.uri, content.mime_type, content.text) == ("artifact://api/schema", "application/json", "{}")

        # MCP writes, the resource reads it back.
        await mcp.call_tool("save_artifact", {"project": "api", "slug": "schema", "content": '{"v": 2}'})
        again = (await mcp.read_resource("artifact://api/schema")).contents[0]
        assert isinstance(again, TextResourceContents) and again.text == '{"v": 2}'

        for uri in ("artifact://api/missing", "artifact://api", "file:///etc/passwd", "artifact://API/Schema"):
            with pytest.raises(MCPError) as err:
                await mcp.read_resource(uri)
            assert err.value.error.code == INVALID_PARAMS, uri
