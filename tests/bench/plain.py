"""The two plain processes ``make bench`` states every ratio against, each served by uvicorn with its defaults.

* ``fastapi_app``: plain FastAPI, one route, constant JSON (``GET /constant``) — what the framework costs;
* ``mcp_app``: a plain MCP SDK server (``MCPServer``, stateless HTTP, JSON responses), one constant tool, no auth
  and no database — what a user's ten-line MCP server costs.

``python -m uvicorn plain:fastapi_app --app-dir tests/bench --port N`` (access log on, as uvicorn defaults).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from mcp.server import MCPServer

__all__ = ["CONSTANT", "fastapi_app", "mcp_app"]

CONSTANT = {"status": "ok", "service": "plain"}

fastapi_app = FastAPI()


@fastapi_app.get("/constant")
async def constant() -> dict[str, str]:
    return CONSTANT


_mcp = MCPServer(name="plain")


@_mcp.tool()
def get_prompt(name: str) -> str:
    """A constant answer: the SDK's own cost, with no auth, no limit, no usage log and no database."""
    return f"Summarise {{{{file}}}} in three bullet points. ({name})"


# The stateless transport logs "Terminating session: None" at INFO for every request; VibeXP silences it too, so
# the comparison is between the two servers' work, not a console's.
logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
mcp_app = _mcp.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True)
