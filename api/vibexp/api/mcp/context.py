"""Who is calling, from inside an MCP handler, and what the usage log should say about the call (action, client).

Authentication, rate limiting and usage recording happen once, in ``ApiKeyAuthMiddleware``, before the request
reaches the MCP transport. That middleware leaves the request's ``RequestState`` (the ``Principal``, a mutable
``RequestUsage``) in the ASGI scope; the SDK hands handlers the Starlette ``Request`` of the HTTP call, so this
module reads it back from there. Nothing here verifies a key: a request without a principal never got past the
middleware.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from starlette.requests import Request

from vibexp.api.request_state import RequestState, RequestUsage, request_state
from vibexp.core.access import Caller
from vibexp.core.errors import AuthFailure, InvalidApiKey
from vibexp.core.keys.verifier import Principal
from vibexp.core.runtime import Runtime
from vibexp.core.usage.actions import mcp_request_action
from vibexp.core.usage.tool_type import ToolType, detect_tool_type

__all__ = ["UsageTagger", "caller_of", "mcp_action", "mcp_message_action", "principal_of", "runtime_of"]


def _state(ctx: ServerRequestContext[Any, Any]) -> RequestState | None:
    request = ctx.request
    return request_state(request.scope) if isinstance(request, Request) else None


def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The authenticated caller of this MCP request (set by ``ApiKeyAuthMiddleware``)."""
    state = _state(ctx)
    if state is None or state.principal is None:  # only if the MCP app were mounted outside the middleware's prefixes
        raise InvalidApiKey("Missing API key", reason=AuthFailure.missing)
    return state.principal


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """The ``Caller`` of this MCP request, built at the MCP edge: its key (scopes and audit name cached with the key
    by the verifier), the address the front door resolved, and the user agent."""
    state = _state(ctx)
    if state is None:  # only if the MCP app were mounted outside the middleware's prefixes
        raise InvalidApiKey("Missing API key", reason=AuthFailure.missing)
    return state.caller()


def runtime_of(ctx: ServerRequestContext[Any, Any]) -> Runtime:
    """The process's runtime, which the MCP server's lifespan yields (``VibeXPMCPServer``)."""
    runtime = ctx.lifespan_context
    if not isinstance(runtime, Runtime):  # only if the server were run outside VibeXPMCPServer's lifespan
        raise RuntimeError("the MCP server's lifespan did not yield the VibeXP runtime")
    return runtime


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
    """The usage action of a JSON-RPC POST body (``vibexp.core.usage.actions``): the tool name for ``tools/call``,
    the method for a prompt or resource read, ``mcp:<method>`` for protocol set-up (not shown as an action).

    Read from the raw body (before the SDK parses it) so notifications, answered 202 before the server task
    handles them, are named too. ``None`` for a body that is not JSON-RPC (the SDK then answers the error).
    """
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep; the SDK answers the parse error
        return None
    return mcp_message_action(message)


def mcp_message_action(message: Any) -> str | None:
    """``mcp_action`` of a body already decoded (``message``)."""
    if isinstance(message, list) and message:
        message = message[0]
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    method: str = message["method"]
    params = message.get("params")
    tool = params.get("name") if method == "tools/call" and isinstance(params, dict) else None
    return mcp_request_action(method[:100], tool[:100] if isinstance(tool, str) else None)


#: User-Agents that name only a runtime or library: a client's own ``clientInfo`` name says more.
_GENERIC = frozenset({ToolType.other.value, ToolType.node.value, ToolType.mcp_sdk.value})
#: A client as a stateless server can tell it apart between requests: its key, User-Agent (bounded) and address.
_Client = tuple[str, str, str]
_MAX_AGENT = 200


def _client_of(state: RequestState, key_id: str) -> _Client:
    return key_id, (state.user_agent or "")[:_MAX_AGENT], state.client_ip or ""


class UsageTagger:
    """SDK server middleware: records the calling client, from its ``clientInfo``, as the request's tool type.

    The 2026-era protocol sends ``clientInfo`` with every request; the handshake era (what Claude Code, Cursor and VS
    Code speak today) only with ``initialize``, and a stateless server keeps no session to carry it over (only a key
    with ``confirm_destructive`` gets an ``Mcp-Session-Id``, ``sessions.py``, and it names no address). So the name a
    client gives at ``initialize`` is remembered, in this process, for the client as later requests identify it: the
    same key, User-Agent and address (the most recent ``max_clients`` of them). A key shared by Claude Code on one
    laptop and Cursor on another is two clients, each request tagged with its own; the usage log then shows both
    (``vibexp.core.usage.service.clients_of``), not the last one. Two clients on one key that send the same User-Agent
    from the same address cannot be told apart: there, the last named wins. A name we do not recognise never overrides a
    User-Agent we do.
    """

    def __init__(self, max_clients: int = 10_000) -> None:
        self.max_clients = max_clients
        self._named: OrderedDict[_Client, str] = OrderedDict()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        state = _state(ctx)
        if state is not None and state.principal is not None:
            self._tag(state, _client_of(state, state.principal.key_id), _client_name(ctx))
        return await call_next(ctx)

    def recall(self, state: RequestState) -> None:
        """Give a request the client named earlier by the same key, User-Agent and address, unless its User-Agent
        already told us more than a runtime or library (``node``, an MCP SDK).

        Also called by the HTTP front door before the SDK runs, for notifications: those are answered (202) before
        the server task reaches any middleware.
        """
        if state.principal is not None:
            self._recall(state.usage, _client_of(state, state.principal.key_id))

    def _recall(self, usage: RequestUsage, client: _Client) -> None:
        if usage.tool_type in _GENERIC:
            named = self._named.get(client)
            if named is not None:
                usage.tool_type = named

    def _tag(self, state: RequestState, client: _Client, client_name: str | None) -> None:
        detected = detect_tool_type(client_name) if client_name else ToolType.other
        if detected is ToolType.other:
            self._recall(state.usage, client)
            return
        state.usage.tool_type = detected.value
        self._named[client] = detected.value
        self._named.move_to_end(client)
        while len(self._named) > self.max_clients:
            self._named.popitem(last=False)
