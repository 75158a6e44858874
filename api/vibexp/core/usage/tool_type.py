"""Which tool is calling, from its User-Agent or its MCP ``clientInfo`` name."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MCP_CLIENTS", "ToolType", "detect_tool_type"]


class ToolType(StrEnum):
    claude_code = "claude_code"
    claude_desktop = "claude_desktop"
    cursor = "cursor"
    vscode = "vscode"
    mcp_inspector = "mcp_inspector"
    curl = "curl"
    python_requests = "python_requests"
    node = "node"
    mcp_sdk = "mcp_sdk"
    browser = "browser"
    other = "other"


# The one table of who is calling, by User-Agent or MCP ``clientInfo.name`` (what each known client sends:
# Claude Code "claude-code", Claude Desktop "claude-ai", Cursor "cursor-vscode", VS Code "Visual Studio Code", the MCP
# Inspector "mcp-inspector"). Order matters: Cursor and VS Code both say "vscode"; the Inspector says "mcp"; MCP
# clients often run on Node.
_RULES: tuple[tuple[tuple[str, ...], ToolType], ...] = (
    (("claude-code", "claude code", "claude-cli", "claudecode"), ToolType.claude_code),
    (("claude-ai", "claude desktop", "claude-desktop"), ToolType.claude_desktop),
    (("cursor",), ToolType.cursor),
    (("visual studio code", "vscode", "vs code", "code-oss"), ToolType.vscode),
    (("inspector",), ToolType.mcp_inspector),
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


#: The MCP clients recognised by their ``clientInfo.name`` (their names for people: ``tool_names.TOOL_NAMES``).
MCP_CLIENTS: frozenset[ToolType] = frozenset(
    {ToolType.claude_code, ToolType.claude_desktop, ToolType.cursor, ToolType.vscode, ToolType.mcp_inspector}
)
