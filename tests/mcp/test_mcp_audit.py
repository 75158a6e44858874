"""MCP deletes are audited like REST ones: the key as actor, the client's address and user agent (issue #16)."""

from __future__ import annotations

import httpx
from mcpkit import connect, ok

from helpers.factories import Account


async def test_deletes_over_mcp_are_in_the_audit_trail(mcp_url: str, rest: httpx.AsyncClient, account: Account) -> None:
    async with connect(mcp_url, account.key, headers={"User-Agent": "claude-code/2.1"}) as mcp:
        memory = await ok(mcp, "save_memory", {"content": "temporary note"})
        await ok(mcp, "create_prompt", {"name": "scratch", "content": "x"})
        await ok(mcp, "delete_memory", {"id": memory["id"]})
        await ok(mcp, "delete_prompt", {"name": "scratch"})
    response = await rest.get("/api/v1/audit-events", headers=account.headers, params={"limit": 2})
    assert response.status_code == 200, response.text
    events = response.json()["items"]
    assert [(e["action"], e["target"]["name"]) for e in events] == [
        ("prompt.deleted", "scratch"),
        ("memory.deleted", "temporary note"),
    ]
    for event in events:
        assert event["actor"]["type"] == "api_key" and event["actor"]["id"] == account.key_id
        assert event["client_ip"] == "127.0.0.1" and event["user_agent"] == "claude-code/2.1"
