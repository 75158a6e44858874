"""The catalogue a client sees, byte for byte: ``tools/list`` (names, titles, descriptions, annotations, input and
output schemas), the server's capabilities and the resource templates, against a snapshot taken from v1.

Refactoring the tools or the handlers must not change what a client reads. After an intended change, regenerate
with ``VIBEXP_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/mcp/test_mcp_catalogue_snapshot.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mcpkit import connect

from helpers.factories import Account

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _check(name: str, observed: Any) -> None:
    path = SNAPSHOTS / name
    text = json.dumps(observed, indent=2, sort_keys=True) + "\n"
    if os.environ.get("VIBEXP_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.exists(), f"no snapshot {path.name}: run with VIBEXP_UPDATE_SNAPSHOTS=1 once"
    assert json.loads(text) == json.loads(path.read_text()), f"{name} changed"


async def test_tools_list_is_unchanged(mcp_url: str, account: Account) -> None:
    async with connect(mcp_url, account.key) as client:
        tools = await client.list_tools()
    _check("tools_list.json", tools.model_dump(mode="json", by_alias=True, exclude_none=True))


async def test_capabilities_and_resource_templates_are_unchanged(mcp_url: str, account: Account) -> None:
    """What a 2026-07-28 client (``server/discover``) and a handshake-era one (``initialize``) are told."""
    async with connect(mcp_url, account.key) as client:
        templates = await client.list_resource_templates()
        capabilities = client.server_capabilities
    async with connect(mcp_url, account.key, mode="legacy") as legacy:
        handshake = legacy.server_capabilities
    _check(
        "capabilities.json",
        {
            "capabilities": capabilities.model_dump(mode="json", by_alias=True, exclude_none=True),
            "handshake_capabilities": handshake.model_dump(mode="json", by_alias=True, exclude_none=True),
            "resource_templates": templates.model_dump(mode="json", by_alias=True, exclude_none=True),
        },
    )
