"""Mounting the MCP server into the FastAPI app: ``/mcp/v1/common``, stateless, JSON responses.

- Stateless HTTP with JSON responses: no session lives in a process, so any replica behind a load balancer can
  answer any request, and a revoked key is refused on its very next request (each one passes the auth middleware).
- Host/Origin checks (DNS-rebinding protection): localhost and 127.0.0.1 on any port always; more from
  ``VIBEXP_MCP_ALLOWED_HOSTS`` / ``VIBEXP_MCP_ALLOWED_ORIGINS`` (e.g. the cluster Service host). ``*`` as a host
  turns the check off, for deployments where an ingress already pins the Host.
- ``GET`` with ``Accept: text/event-stream`` is the handshake era's standalone server-to-client stream: the
  change notifications of the key's account it may read (``live.EventStreams``; capped, kept alive, ended with its
  key). The same Host/Origin checks apply. Any other ``GET`` answers 405 (``Allow: GET, POST``), as the spec allows.
- Handshake-era ``initialize`` by a key with ``confirm_destructive`` gets a sealed ``Mcp-Session-Id`` (what the
  client declared; ``sessions.py``), and its destructive tools ask through ``elicitation/create`` on an SSE answer
  (``handshake.HandshakeDoor``). A request carrying a session id this server did not issue to its key is 404 (the
  client starts a new session); ``DELETE`` with a valid one is 204.
- The SDK answers a few transport errors (bad Host, wrong Content-Type, unknown path) with plain text; the
  front door here rewrites those to the API's ``{"error": {"code", "message"}}`` body, leaving JSON-RPC alone.
- The SDK's session manager runs inside the app's lifespan (``app.state.lifespan_hooks``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api.errors import error_payload, error_response
from vibexp.api.mcp.context import UsageTagger, mcp_action, mcp_message_action
from vibexp.api.mcp.fastpath import UNPARSED, McpFastPath, parse_body, remember_body
from vibexp.api.mcp.handshake import HandshakeDoor
from vibexp.api.mcp.live import EventStreams, Listeners
from vibexp.api.mcp.server import create_mcp_server
from vibexp.api.mcp.sessions import SessionSeal, handshake_era, session_header
from vibexp.api.request_state import RequestUsage, request_state
from vibexp.api.settings import ApiSettings
from vibexp.core.runtime import Runtime
from vibexp.core.usage.actions import mcp_request_action

__all__ = [
    "CONNECT_ENDPOINT",
    "MCP_ENDPOINT",
    "MCP_MOUNT",
    "MCP_PATH",
    "ConnectAlias",
    "McpFrontDoor",
    "mount_mcp",
    "transport_security",
]

MCP_MOUNT = "/mcp/v1"
MCP_PATH = "/common"
#: The one MCP endpoint; its route template in the usage log and the metrics too (``McpFrontDoor.routes``).
MCP_ENDPOINT = MCP_MOUNT + MCP_PATH
#: The same MCP server for OAuth access tokens (the auth middleware tells the two apart; nothing below it does).
CONNECT_PATH = "/connect"
CONNECT_ENDPOINT = MCP_MOUNT + CONNECT_PATH

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    421: "misdirected_request",
}


def transport_security(settings: ApiSettings) -> TransportSecuritySettings:
    hosts = [*_LOCAL_HOSTS, *(f"{h}:*" for h in _LOCAL_HOSTS), *settings.mcp_allowed_hosts]
    origins = [
        *(f"{scheme}://{h}{port}" for scheme in ("http", "https") for h in _LOCAL_HOSTS for port in ("", ":*")),
        *settings.mcp_allowed_origins,
    ]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection="*" not in settings.mcp_allowed_hosts,
        allowed_hosts=hosts,
        allowed_origins=origins,
    )


class McpFrontDoor:
    """In front of the SDK app: serves the ``GET`` event stream (``events``; without it, or for a ``GET`` that does
    not accept ``text/event-stream``, 405), names the usage action from the JSON-RPC body, and rewrites the SDK's
    non-JSON 4xx/5xx answers to our error body."""

    def __init__(
        self,
        app: ASGIApp,
        tagger: UsageTagger,
        *,
        events: EventStreams | None = None,
        security: TransportSecuritySettings | None = None,
        handshake: HandshakeDoor | None = None,
    ) -> None:
        self.app = app
        self.tagger = tagger
        self.events = events
        self.handshake = handshake
        self.security = TransportSecurityMiddleware(security)

    @property
    def routes(self) -> list[BaseRoute]:
        """The SDK app's routes (``/common``), so the mount's route template is ``/mcp/v1/common``, not a catch-all."""
        routes = getattr(self.app, "routes", [])
        return list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = request_state(scope)
        body: bytes | None = None
        parsed: Any = UNPARSED
        if state is not None and state.principal is not None:
            self.tagger.recall(state)
            if scope["method"] == "POST":
                body, parsed, receive = await self._name_action(state.usage, receive)
            else:  # the GET a handshake-era client opens for a stream (405 below): protocol set-up, not an action
                state.usage.action = mcp_request_action(scope["method"])
        endpoint = scope["path"].rstrip("/") == MCP_ENDPOINT
        if scope["method"] == "GET" and endpoint:
            await self._get(scope, receive, send)
            return
        principal = state.principal if state is not None else None
        # A key that does not confirm, without a session (every other client), pays one header scan here.
        token = session_header(scope) if principal is not None else None
        if (
            self.handshake is not None
            and principal is not None
            and (token is not None or principal.confirm_destructive)
            and endpoint
            and handshake_era(scope)
        ):
            if scope["method"] == "POST" and body is not None:
                answered = await self.handshake.post(
                    scope, receive, send, body=body, principal=principal, token=token, forward=self._forward
                )
                if answered:
                    return
            elif scope["method"] == "DELETE" and token is not None:
                if self.handshake.session(token, principal) is None:
                    await self.handshake.unknown_session(scope, receive, send)
                else:  # nothing is kept for a session: nothing to end
                    await Response(status_code=204)(scope, receive, send)
                return
        if body is not None:  # read and parsed once: the fast path takes both from here
            remember_body(scope, body, parsed)
        await self._forward(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """To the SDK (or the fast path), its non-JSON error answers rewritten to the API's error body."""
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                content_type = headers.get(b"content-type", b"").decode("latin-1")
                if message["status"] >= 400 and "json" not in content_type:
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await self._send_json(start, bytes(body), send)
                return
            await send(message)

        # The mounted Starlette app puts itself in scope["app"]; the outer middleware that runs after the response
        # (usage, metrics) must still find the FastAPI app there.
        outer_app = scope.get("app")
        try:
            await self.app(scope, receive, capture)
        finally:
            if outer_app is not None:
                scope["app"] = outer_app

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The event stream for a GET that accepts it (and passes the Host/Origin checks); else 405."""
        state = request_state(scope)
        request = Request(scope)
        if self.events is None or state is None or state.principal is None or not _accepts_event_stream(request):
            response = error_response(
                405,
                "method_not_allowed",
                "Send JSON-RPC requests with POST; a GET opens the change-notification stream and must accept "
                "text/event-stream",
                headers={"Allow": "GET, POST"},
            )
            await response(scope, receive, send)
            return
        token = session_header(scope)
        if token is not None and self.handshake is not None and self.handshake.session(token, state.principal) is None:
            await self.handshake.unknown_session(scope, receive, send)
            return
        refused = await self.security.validate_request(request)
        if refused is not None:  # plain text from the SDK's check (bad Host: 421, bad Origin: 403): our error body
            message = bytes(refused.body).decode("utf-8", "replace") or "Request refused"
            await error_response(refused.status_code, _CODES.get(refused.status_code, "error"), message)(
                scope, receive, send
            )
            return
        await self.events(state.principal, scope, receive, send)

    @staticmethod
    async def _name_action(usage: RequestUsage, receive: Receive) -> tuple[bytes, Any, Receive]:
        """Read the (size-limited) body, name the usage action after its JSON-RPC method; the body, its parse
        (``fastpath.parse_body``) and a receive that replays it."""
        chunks: list[bytes] = []
        trailing: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                trailing = message
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        parsed = parse_body(body)
        # A body the SDK's parser refuses may still be JSON to Python's (a lone surrogate escape): named by that.
        usage.action = mcp_action(body) if parsed is UNPARSED else mcp_message_action(parsed)
        pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        if trailing is not None:
            pending.append(trailing)

        async def replay() -> Message:
            return pending.pop(0) if pending else await receive()

        return body, parsed, replay

    @staticmethod
    async def _send_json(start: Message, body: bytes, send: Send) -> None:
        status = int(start["status"])
        message = body.decode("utf-8", "replace").strip() or "Request refused"
        payload = json.dumps(error_payload(_CODES.get(status, "error"), message[:500])).encode()
        headers = [
            (name, value)
            for name, value in start.get("headers", [])
            if name.lower() not in (b"content-type", b"content-length")
        ]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


class ConnectAlias:
    """``/mcp/v1/connect`` is ``/mcp/v1/common`` once the auth middleware has checked its credential (an access
    token there, a key here): the request goes on with the common path, so the front door, the fast path and the
    SDK see one endpoint. The route template (usage, metrics) stays ``/mcp/v1/connect``: it is resolved earlier."""

    def __init__(self, app: McpFrontDoor) -> None:
        self.app = app

    @property
    def routes(self) -> list[BaseRoute]:
        return [*self.app.routes, Route(CONNECT_PATH, endpoint=self._never)]

    @staticmethod
    async def _never(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover - a template only
        raise RuntimeError("the alias route is a route template, never called")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.rstrip("/") == CONNECT_ENDPOINT:
            scope = {**scope, "path": MCP_ENDPOINT, "raw_path": MCP_ENDPOINT.encode()}
        await self.app(scope, receive, send)


def _accepts_event_stream(request: Request) -> bool:
    """Whether the request's ``Accept`` names ``text/event-stream`` (as the spec requires of a GET for the stream)."""
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/event-stream" for part in accept.split(","))


def _listeners(settings: ApiSettings) -> Listeners:
    return Listeners(
        per_key=settings.mcp_listeners_per_key,
        per_process=settings.mcp_listeners_per_process,
        idle_seconds=settings.mcp_listen_idle_seconds,
        keepalive_seconds=settings.mcp_stream_keepalive_seconds,
    )


def mount_mcp(app: FastAPI, runtime: Runtime, settings: ApiSettings) -> None:
    """Serve MCP at ``/mcp/v1/common`` in ``app`` and run the SDK's session manager in its lifespan."""
    # Stateless transport: the SDK would log "Terminating session: None" at INFO for every single request.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    server = create_mcp_server(runtime, listeners=_listeners(settings))
    app.state.mcp_listeners = server.listeners
    mcp_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=transport_security(settings),
        max_request_body_size=settings.max_body_bytes,
    )
    inner: ASGIApp = mcp_app
    app.state.lifespan_hooks.append(server.session_manager.run)
    if settings.mcp_fast_path:  # single stateless JSON requests skip the SDK's per-request transport
        fast = McpFastPath(
            mcp_app,
            path=MCP_MOUNT + MCP_PATH,
            server=server.session_manager.app,
            security=transport_security(settings),
        )
        app.state.lifespan_hooks.append(fast.lifespan)
        inner = fast
    events = EventStreams(server.listeners, runtime)
    handshake = HandshakeDoor(
        runtime,
        SessionSeal(settings.secret_key),
        timeout=settings.mcp_confirm_timeout,
        keepalive_seconds=settings.mcp_stream_keepalive_seconds,
    )
    front_door = McpFrontDoor(
        inner, server.usage_tagger, events=events, security=transport_security(settings), handshake=handshake
    )
    app.mount(MCP_MOUNT, ConnectAlias(front_door), name="mcp")
