"""The MCP Inspector (tests/clients, `make clients`) lists completions.

Its one-shot ``mcp-inspector --cli`` has no completion method (its list: initialize, tools/*, resources/*, prompts/
list|get, logging/setLevel, skills/*); the same pinned package's connection CLI, ``mcpdo``, has ``prompts/complete``,
which sends ``completion/complete`` for a prompt argument (``--complete-ref-type ref/prompt``) or for the artifact
template (``ref/resource``). ``mcpdo`` runs a daemon in the (private) HOME: stopped when the test ends. The
``--cli`` ``initialize`` shows the declared capability. Completions themselves are tested in depth with the
official SDK client (tests/mcp/test_mcp_completions.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_mcp_completions import fill_completions
from test_mcp_real_clients import Clients, InspectorCli, installed

from helpers.factories import Account

pytestmark = pytest.mark.clients

TEMPLATE = "artifact://{project}/{slug}"


class Mcpdo:
    """``mcpdo``: one named connection (``vibexp``) to the server, commands against it, JSON output."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients
        self._exe = str(installed("mcpdo"))

    async def run(self, *args: str) -> Any:
        run = await self._clients.run(["node", self._exe, *args])
        assert run.code == 0, run
        return run

    async def complete(self, kind: str, ref: str, name: str, value: str) -> list[str]:
        run = await self.run(
            *("prompts/complete", "--connection", "vibexp", "--format", "json"),
            *("--complete-ref-type", kind, "--complete-ref", ref),
            *("--complete-arg-name", name, "--complete-arg-value", value),
        )
        values: list[str] = json.loads(run.stdout)["values"]
        return values


@pytest.fixture
async def mcpdo(tmp_path: Path, mcp_url: str, account: Account) -> AsyncIterator[Mcpdo]:
    home = tmp_path / "home"
    home.mkdir()
    tool = Mcpdo(Clients(home, secrets=[account.key]))
    try:
        await tool.run(
            *("connect", "--transport", "http", "--server-url", mcp_url, "--connection", "vibexp"),
            *("--header", f"Authorization: Bearer {account.key}"),
        )
        yield tool
    finally:
        await tool.run("daemon", "stop")


async def test_the_inspector_lists_completions(
    mcpdo: Mcpdo, db: async_sessionmaker[AsyncSession], account: Account
) -> None:
    await fill_completions(db, account)
    # A prompt argument named like get_prompt's: the account's prompt names by prefix.
    assert await mcpdo.complete("ref/prompt", "reviewer", "name", "rev") == ["review", "reviewer"]
    # The artifact template's projects by prefix.
    assert await mcpdo.complete("ref/resource", TEMPLATE, "project", "we") == ["web", "webapp"]
    # A prompt that does not exist completes to nothing (the answer never tells whether it exists).
    assert await mcpdo.complete("ref/prompt", "nope", "name", "") == []


async def test_the_inspector_sees_the_completions_capability(tmp_path: Path, mcp_url: str, account: Account) -> None:
    home = tmp_path / "home"
    home.mkdir()
    inspector = InspectorCli(Clients(home, secrets=[account.key]), mcp_url)
    assert await inspector.version() == "2.12.0"
    result = await inspector.result(account.key, "initialize")
    assert result["capabilities"]["completions"] == {}, result
