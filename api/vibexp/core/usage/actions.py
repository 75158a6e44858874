"""Which recorded requests are actions: what "recent actions" show.

Every authenticated request is recorded (it counts towards the key's requests and the hourly charts), but an MCP
client's protocol set-up is not something the agent did: ``initialize``, ``notifications/*``, listings and pings,
and the ``GET`` a handshake-era client opens for a server-sent stream (answered 405: this server is stateless). An
MCP request is an action when it calls a tool (recorded under the tool's name) or reads a prompt or a resource
(``prompts/get``, ``resources/read``); every REST request is an action. Set-up is recorded under an action that starts
with ``SETUP_PREFIX`` (``mcp:initialize``, ``mcp:GET``), which the recent-actions query leaves out.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, not_

from vibexp.core.usage.models import KeyAction

__all__ = ["MCP_ACTIONS", "SETUP_PREFIX", "is_shown", "mcp_request_action", "shown"]

#: The MCP methods that are actions (besides ``tools/call``, recorded under the tool's name).
MCP_ACTIONS = frozenset({"prompts/get", "resources/read"})
#: What set-up actions start with (a tool name never contains ``:``).
SETUP_PREFIX = "mcp:"


def mcp_request_action(method: str, tool: str | None = None) -> str:
    """The recorded action of an MCP request: the tool's name for ``tools/call``, the method for a prompt or
    resource read, else ``mcp:<method>`` (set-up, not shown)."""
    if method == "tools/call" and tool:
        return tool
    if method in MCP_ACTIONS:
        return method
    return SETUP_PREFIX + method


def is_shown(action: str) -> bool:
    return not action.startswith(SETUP_PREFIX)


def shown() -> ColumnElement[bool]:
    """The recent-actions filter: rows that are actions."""
    return not_(KeyAction.action.startswith(SETUP_PREFIX, autoescape=True))
