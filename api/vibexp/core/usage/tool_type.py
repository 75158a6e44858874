"""Which tool is calling, from its User-Agent or its MCP ``clientInfo`` name."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ToolType", "detect_tool_type"]


class ToolType(StrEnum):
    claude_code = "claude_code"
    cursor = "cursor"
    vscode = "vscode"
    curl = "curl"
    python_requests = "python_requests"
    node = "node"
    mcp_sdk = "mcp_sdk"
    browser = "browser"
    other = "other"


# Order matters: Cursor and VS Code both say "vscode"; MCP clients often run on Node.
_RULES: tuple[tuple[tuple[str, ...], ToolType], ...] = (
    (("claude-code", "claude code", "claude-cli", "claudecode"), ToolType.claude_code),
    (("cursor",), ToolType.cursor),
    (("visual studio code", "vscode", "vs code", "code-oss"), ToolType.vscode),
    (("curl/",), ToolType.curl),
    (("python-requests",), ToolType.python_requests),
    (("axios", "node-fetch", "undici", "node.js", "node/"), ToolType.node),
    (("mcp", "modelcontextprotocol", "python-httpx", "httpx2"), ToolType.mcp_sdk),
    (("mozilla/", "chrome/", "safari/"), ToolType.browser),
)


def detect_tool_type(user_agent: str | None) -> ToolType:
    if not user_agent:
        return ToolType.other
    lowered = user_agent.lower()
    for needles, tool in _RULES:
        if any(needle in lowered for needle in needles):
            return tool
    return ToolType.other
