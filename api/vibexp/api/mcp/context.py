"""Who is calling, from inside an MCP handler, and what the usage log should say about the call (action, client).

Authentication, rate limiting and usage recording happen once, in ``ApiKeyAuthMiddleware``, before the request
reaches the MCP transport. That middleware leaves the ``Principal`` and a mutable ``RequestUsage`` in the ASGI
scope's state; the SDK hands handlers the Starlette ``Request`` of the HTTP call, so this module reads them back
from there. Nothing here verifies a key: a request without a principal never got past the middleware.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from starlette.requests import Request

from vibexp.api.middleware.auth import PRINCIPAL_STATE, USAGE_STATE, RequestUsage
from vibexp.core.errors import InvalidApiKey
from vibexp.core.keys.verifier import Principal
from vibexp.core.usage.tool_type import ToolType, detect_tool_type

__all__ = ["UsageTagger", "mcp_action", "principal_of", "usage_of"]


def _state(ctx: ServerRequestContext[Any, Any]) -> Mapping[str, Any]:
    request = ctx.request
    if not isinstance(request, Request):
        return {}
    state = request.scope.get("state")
    return state if isinstance(state, Mapping) else {}


def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The authenticated caller of this MCP request (set by ``ApiKeyAuthMiddleware``)."""
    principal = _state(ctx).get(PRINCIPAL_STATE)
    if not isinstance(principal, Principal):  # only if the MCP app were mounted outside the middleware's prefixes
        raise InvalidApiKey("Missing API key", reason="missing")
    return principal


def usage_of(ctx: ServerRequestContext[Any, Any]) -> RequestUsage | None:
    usage = _state(ctx).get(USAGE_STATE)
    return usage if isinstance(usage, RequestUsage) else None


def _client_name(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The client's self-reported name: from ``initialize`` params, or the connection's (2026-era envelope)."""
    if ctx.method == "initialize" and isinstance(ctx.params, Mapping):
        info = ctx.params.get("clientInfo")
        if isinstance(info, Mapping) and isinstance(info.get("name"), str):
            return str(info["name"])
    client_params = ctx.session.client_params
    if client_params is not None:
        return client_params.client_info.name
    return None


def mcp_action(body: bytes) -> str | None:
    """The usage action of a JSON-RPC POST body: the tool name for ``tools/call``, else the method.

    Read from the raw body (before the SDK parses it) so notifications, answered 202 before the server task
    handles them, are named too. ``None`` for a body that is not JSON-RPC (the SDK then answers the error).
    """
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if isinstance(message, list) and message:
        message = message[0]
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    method: str = message["method"]
    params = message.get("params")
    if method == "tools/call" and isinstance(params, dict):
        name = params.get("name")
        if isinstance(name, str) and name:
            return name[:100]
    return method[:100]


class UsageTagger:
    """SDK server middleware: records the calling client, from its ``clientInfo``, as the request's tool type.

    The handshake-era protocol sends ``clientInfo`` only with ``initialize``; the 2026-era one with every request.
    Where the client names itself, its name wins over the User-Agent guess made by the auth middleware, unless
    the name says nothing we recognise.
    """

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        usage = usage_of(ctx)
        name = _client_name(ctx) if usage is not None else None
        if usage is not None and name:
            detected = detect_tool_type(name)
            if detected is not ToolType.other or usage.tool_type == ToolType.other.value:
                usage.tool_type = detected.value
        return await call_next(ctx)
