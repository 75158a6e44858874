"""The MCP Inspector CLI (tests/clients, `make clients`) sees the ``completions`` capability the server declares.

The pinned Inspector CLI (2.12.0) has no ``completion/complete`` method in ``--cli`` mode (its one-shot methods are
initialize, tools/*, resources/*, prompts/*, logging/setLevel, skills/*), so it cannot list completions itself:
completions are exercised with the official SDK client in tests/mcp/test_mcp_completions.py. What the Inspector can
show, its ``initialize`` answer, must declare them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_mcp_real_clients import Clients, InspectorCli

from helpers.factories import Account

pytestmark = pytest.mark.clients


async def test_the_inspector_sees_the_completions_capability(tmp_path: Path, mcp_url: str, account: Account) -> None:
    home = tmp_path / "home"
    home.mkdir()
    inspector = InspectorCli(Clients(home, secrets=[account.key]), mcp_url)
    assert await inspector.version() == "2.12.0"
    result = await inspector.result(account.key, "initialize")
    assert result["capabilities"]["completions"] == {}, result
