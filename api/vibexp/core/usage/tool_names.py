"""How people call each ``ToolType``: one table beside ``tool_type.py`` ("Python requests", not ``python_requests``).
``tests/dashboard/test_dashboard_usage.py`` ties it to the enum."""

from __future__ import annotations

from vibexp.core.usage.tool_type import ToolType

__all__ = ["TOOL_NAMES", "tool_name"]

TOOL_NAMES: dict[ToolType, str] = {
    ToolType.claude_code: "Claude Code",
    ToolType.claude_desktop: "Claude Desktop",
    ToolType.cursor: "Cursor",
    ToolType.vscode: "VS Code",
    ToolType.mcp_inspector: "MCP Inspector",
    ToolType.curl: "curl",
    ToolType.python_requests: "Python requests",
    ToolType.node: "Node.js",
    ToolType.mcp_sdk: "MCP SDK",
    ToolType.browser: "Web browser",
    ToolType.other: "Other",
}


def tool_name(value: str | None) -> str:
    """The tool's name; none recorded is an em dash, a value this version does not know is shown as stored."""
    if not value:
        return "—"
    try:
        return TOOL_NAMES[ToolType(value)]
    except ValueError:
        return value
