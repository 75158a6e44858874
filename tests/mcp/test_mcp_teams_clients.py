"""The MCP Inspector CLI (tests/clients, `make clients`) sees a personal key as its owner's role allows: a viewer's
key lists only the read tools, and so does a member's key once its owner is demoted to viewer (its stored scopes
still include the write ones), which the Inspector then refuses to call; promoted back, the write tools return."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from mcpkit import READ_TOOLS
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_mcp_real_clients import Clients, InspectorCli

from helpers.factories import Account
from helpers.teams import make_person
from vibexp.api.mcp.tools import TOOL_NAMES
from vibexp.core.access import Role

pytestmark = pytest.mark.clients


async def _listed(inspector: InspectorCli, key: str) -> list[str]:
    return [tool["name"] for tool in (await inspector.result(key, "tools/list"))["tools"]]


async def test_the_inspector_lists_a_viewers_key_only_the_read_tools(
    tmp_path: Path, mcp_url: str, db: async_sessionmaker[AsyncSession], account: Account, rest: httpx.AsyncClient
) -> None:
    viewer = await make_person(db, tenant_id=account.tenant.id, role=Role.viewer)
    member = await make_person(db, tenant_id=account.tenant.id, role=Role.member)
    inspector = InspectorCli(Clients(tmp_path, secrets=[account.key, viewer.key, member.key]), mcp_url)

    assert await _listed(inspector, viewer.key) == READ_TOOLS
    assert await _listed(inspector, member.key) == list(TOOL_NAMES)

    demoted = await rest.patch(f"/api/v1/members/{member.user_id}", json={"role": "viewer"}, headers=account.headers)
    assert demoted.status_code == 200, demoted.text
    assert await _listed(inspector, member.key) == READ_TOOLS
    refused = await inspector.error(member.key, "tools/call", "--tool-name", "save_memory", "--tool-arg", "content=x")
    assert refused["code"] == "tool_not_found" and "save_memory" in refused["message"], refused

    promoted = await rest.patch(f"/api/v1/members/{member.user_id}", json={"role": "member"}, headers=account.headers)
    assert promoted.status_code == 200, promoted.text
    assert await _listed(inspector, member.key) == list(TOOL_NAMES)
    saved = await inspector.result(member.key, "tools/call", "--tool-name", "save_memory", "--tool-arg", "content=y")
    assert saved.get("isError") is not True, saved
