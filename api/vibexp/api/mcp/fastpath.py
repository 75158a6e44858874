"""A lighter path for the common MCP POST: one JSON-RPC request, stateless, JSON response.

For every stateless POST the SDK's transport builds a ``StreamableHTTPServerTransport``, memory streams, a
``JSONRPCDispatcher`` and a task in its task group, then tears them down (~2 ms of CPU, more than the tool call).
A single request needs none of that: this module answers it as the SDK's public single-exchange driver,
``mcp.server.runner.serve_one`` (the one its own 2026-era HTTP entry uses), does (``answer_one``: its
``ServerRunner`` on a born-ready ``Connection`` built the way the stateless transport builds one, through the
low-level server's full middleware chain and handlers), and writes the JSON-RPC envelope itself.

Only requests the SDK would answer in exactly this way take the fast path: a POST with a JSON body holding one
JSON-RPC request (not a batch, notification or response), no ``initialize`` (its version negotiation stays with
the SDK), a handshake-era or absent ``MCP-Protocol-Version`` (other versions are the SDK's modern entry), an
``Accept`` that allows JSON and a JSON ``Content-Type``, and Host/Origin accepted by the same
``TransportSecurityMiddleware``. The body is parsed by the parser the SDK's transport uses
(``pydantic_core.from_json``, ``parse_body``), so a body it refuses (a lone surrogate escape, ``"\ud800"``, is one:
Python's ``json`` would take it) is refused the same way; and parsed once: the front door, which reads it to name
the usage action, leaves it and its parse in the scope (``remember_body``). Everything else, including every
malformed request, goes to the SDK unchanged (with the body replayed), so its answers and error codes stay the SDK's.

Errors map as the SDK's stateless transport maps them: ``handler_exception_to_error_data`` for ``MCPError`` and
validation errors. Every other failure inside the server is already ``-32603`` when it gets here
(``guard.RequestGuard``); what is left (a failure outside the handler chain, a reply that cannot be serialised) is
answered ``-32603`` too and logged, never with the exception's text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.lowlevel import Server
from mcp.server.runner import ServerRunner, aclose_shielded
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    INTERNAL_ERROR,
    ErrorData,
    JSONRPCError,
    RequestId,
)
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api.mcp.errors import INTERNAL_ERROR_MESSAGE
from vibexp.api.mcp.sessions import handshake_era

__all__ = ["UNPARSED", "McpFastPath", "parse_body", "read_body", "remember_body", "replayed"]

log = logging.getLogger(__name__)

_FIELDS = frozenset({"jsonrpc", "id", "method", "params"})
_INTERNAL = ErrorData(code=INTERNAL_ERROR, message=INTERNAL_ERROR_MESSAGE)
#: Where the front door leaves the POST body it read and parsed (``remember_body``), so nothing reads it twice.
_BODY_KEY = "vibexp.mcp.body"
#: A body the SDK's parser refused (``parse_body``).
UNPARSED: Any = object()


@dataclass
class _OneRequestContext:
    """``mcp.shared.dispatcher.DispatchContext`` of one stateless JSON exchange: no back channel (a stateless
    client's reply would have nowhere to land) and nowhere to stream notifications (the answer is one JSON body),
    exactly what the SDK's stateless JSON transport offers a handler."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: ServerMessageMetadata
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = False

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        return None  # a JSON response has no room for notifications; the SDK's JSON mode drops them too

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None


def parse_body(body: bytes) -> Any:
    """``body`` decoded by the SDK transport's parser (what it refuses, it answers itself), or ``UNPARSED``."""
    try:
        return pydantic_core.from_json(body)
    except (ValueError, RecursionError):
        return UNPARSED


def _single_request(message: Any) -> dict[str, Any] | None:
    """``message`` (a decoded body) if it is exactly one well-formed JSON-RPC request the fast path may answer."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not _FIELDS.issuperset(message):
        return None
    request_id, method, params = message.get("id"), message.get("method"), message.get("params")
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return None
    if not isinstance(method, str) or method == "initialize" or not (params is None or isinstance(params, dict)):
        return None
    return message


class McpFastPath:
    """ASGI app in front of the SDK's streamable-HTTP app (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, path: str, server: Server[Any], security: TransportSecuritySettings) -> None:
        self.app = app
        self.path = path
        self.server = server
        self.security = TransportSecurityMiddleware(security)
        self._lifespan_state: Any = None
        self._running = False

    @property
    def routes(self) -> list[Any]:
        """The SDK app's routes, so the mount's route template stays ``/mcp/v1/common`` (see ``McpFrontDoor``)."""
        return list(getattr(self.app, "routes", []))

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Enter the low-level server's lifespan (its handlers may use the state) for as long as the app runs."""
        async with self.server.lifespan(self.server) as state:
            self._lifespan_state, self._running = state, True
            try:
                yield
            finally:
                self._lifespan_state, self._running = None, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            self._running
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == self.path
            and handshake_era(scope)
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        read = read_body(scope)
        if read is None:
            body = await request.body()
            parsed: Any = parse_body(body)
            onward = replayed(body, receive)
        else:  # the front door read and parsed it (mount.py), and its receive still replays it: neither again
            body, parsed = read
            onward = receive
        message = _single_request(parsed) if self._acceptable(request) else None
        if message is None or await self.security.validate_request(request, is_post=True) is not None:
            await self.app(scope, onward, send)
            return
        payload = await self._answer(request, message)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    def _acceptable(request: Request) -> bool:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        return content_type == "application/json" and check_accept_headers(request)[0]

    async def _answer(self, request: Request, message: dict[str, Any]) -> bytes:
        request_id: RequestId = message["id"]
        version = request.headers.get("mcp-protocol-version") or DEFAULT_NEGOTIATED_VERSION
        context = _OneRequestContext(
            transport=TransportContext(kind="streamable-http", can_send_request=False, headers=request.headers),
            request_id=request_id,
            message_metadata=ServerMessageMetadata(request_context=request),
        )
        try:
            result = await answer_one(
                self.server, context, message["method"], message.get("params"), version, self._lifespan_state
            )
        except Exception as exc:
            error = handler_exception_to_error_data(exc)
            if error is None:  # outside the guarded handler chain: still no internals on the wire
                log.exception("MCP request %r failed", message["method"])
                error = _INTERNAL
            return _error_reply(request_id, error)
        try:
            # What JSONRPCResponse(...).model_dump_json(by_alias=True, exclude_unset=True) writes (members in that
            # order, compact), without validating the result dict into the envelope model first.
            return pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "result": result})
        except pydantic_core.PydanticSerializationError:
            log.exception("MCP request %r: the reply could not be serialised", message["method"])
            return _error_reply(request_id, _INTERNAL)


def _error_reply(request_id: RequestId, error: ErrorData) -> bytes:
    return (
        JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
        .model_dump_json(by_alias=True, exclude_unset=True)
        .encode()
    )


async def answer_one(
    server: Server[Any],
    context: _OneRequestContext,
    method: str,
    params: Mapping[str, Any] | None,
    version: str,
    lifespan_state: Any,
) -> dict[str, Any]:
    """``serve_one`` on a born-ready connection: the SDK's ``ServerRunner`` (its middleware chain, validation,
    handler lookup, result sieve, all unchanged), then the connection's exit stack unwound.

    ``serve_one`` unwinds it under a shielded, bounded cancel scope (``aclose_shielded``), which costs ~25 µs a call
    though nothing in the SDK or in VibeXP ever pushes onto a one-request connection's exit stack. So that unwind
    runs only when something was pushed (the stack's callbacks, read through ``getattr`` with a truthy default: were
    the attribute ever gone, every call would unwind as ``serve_one`` does).
    """
    connection = Connection.from_envelope(version, None, None)
    try:
        return await ServerRunner(server, connection, lifespan_state).on_request(context, method, params)
    finally:
        if getattr(connection.exit_stack, "_exit_callbacks", True):
            await aclose_shielded(connection)


def remember_body(scope: Scope, body: bytes, parsed: Any) -> None:
    """Keep a POST body and its ``parse_body`` for the fast path, which then reads and parses nothing itself."""
    scope[_BODY_KEY] = (body, parsed)


def read_body(scope: Scope) -> tuple[bytes, Any] | None:
    """The body and its parse that ``remember_body`` kept in ``scope``, if any."""
    found: tuple[bytes, Any] | None = scope.get(_BODY_KEY)
    return found


def replayed(body: bytes, receive: Receive) -> Receive:
    """``receive`` for an app that must read a body already read: the body once, then the client's own."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
