"""The front door: every VibeXP check that runs before key authentication, in one ASGI pass.

One middleware, outermost in the app's stack (inside Starlette's ``ServerErrorMiddleware``), does in order what
five layers used to do one inside the other, each step's logic in its own module:

1. **client address** (``client_address``): resolved once, for HTTP and websocket requests, into the scope's state
   and ``scope["client"]``, before anything can answer (the access log names the same address);
2. **outage** (``outage``): from here on, a database outage error becomes ``503 service_unavailable`` with
   ``Retry-After``, and an answer a handler noted as one (``note_database_unavailable``) is replaced by it;
3. **header guard** (``headers``): ``431`` for an oversized header line or header block, then ``401`` for more
   than one ``Authorization``;
4. **body limit** (``body_limit``): ``413`` for a declared ``Content-Length`` over the limit, at once; for a body
   that may be longer than it declared, at the chunk that crosses the limit (the app then sees the client gone,
   and whatever it answers is dropped); the rest of the body is drained first;
5. **auth-failure throttle** (``auth_throttle``): under ``/api/v1`` and ``/mcp``, ``429 rate_limited`` for an
   address over its budget of refused keys; each ``401`` the app behind answers counts against it.

Then the app (``ApiKeyAuthMiddleware`` and FastAPI). The headers are read in one loop; ``send`` is wrapped once
(one bound method of the request's ``_Exchange``, which is also the outage marker) and ``receive`` only when the
body must be counted. What each step answers, and which step answers first, is what the five layers answered.

Exception tree of a request (what escapes the app, and who answers)::

    Exception raised by the app (or by the steps' own reads)
    ├── after a 413 (the body limit refused): dropped, the 413 is the answer
    ├── a database outage error (``is_database_unavailable``)
    │   ├── nothing sent yet: the 503 is the answer
    │   └── the answer was under way: it ends there; the outage is still noted once
    └── anything else (``BodyTooLarge`` included): re-raised to ``ServerErrorMiddleware`` (500)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api.middleware.auth_throttle import THROTTLED_PREFIXES, throttled_response
from vibexp.api.middleware.body_limit import BodyLimit, BodyTooLarge
from vibexp.api.middleware.client_address import client_address, forwarded_for, resolve_client
from vibexp.api.middleware.headers import header_refusal
from vibexp.api.middleware.outage import (
    OutageMarker,
    answer_unavailable,
    end_watch,
    is_database_unavailable,
    note_failure,
    watch_request,
)
from vibexp.core.client_address import ClientAddressResolver
from vibexp.core.outage import OutageLog
from vibexp.core.ratelimit.failures import FailureThrottle

__all__ = ["FrontDoorMiddleware"]


class FrontDoorMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        resolver: ClientAddressResolver,
        outage: OutageLog,
        body_limit: BodyLimit,
        throttle: FailureThrottle,
        max_header_bytes: int = 8192,
        max_total_header_bytes: int = 32768,
    ) -> None:
        self.app = app
        self.resolver = resolver
        #: Shared with the engine it watches (``create_app``): a database operation that succeeds ends the outage.
        self.outage = outage
        self.body_limit = body_limit
        self.throttle = throttle
        self.max_header_bytes = max_header_bytes
        self.max_total_header_bytes = max_total_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":  # only the client address applies to a websocket
                resolve_client(scope, self.resolver, forwarded_for(scope) if self.resolver.trusts_proxies else None)
            await self.app(scope, receive, send)
            return
        # 1. The client address.
        resolve_client(scope, self.resolver, forwarded_for(scope) if self.resolver.trusts_proxies else None)
        # 2. The outage watch, around everything below.
        exchange = _Exchange(self, scope, receive, send)
        token = watch_request(exchange)
        try:
            await self._guarded(exchange, scope, receive)
        except Exception as exc:
            if exchange.refused:  # after a 413 the app's complaint about the cut-off body is expected
                return
            if not is_database_unavailable(exc):
                raise
            if not exchange.started:
                await answer_unavailable(self.outage, scope, receive, send, exc)
            else:  # the answer was already under way: it ends here, and the outage is still reported once
                note_failure(self.outage, exc)
        finally:
            end_watch(token)

    async def _guarded(self, exchange: _Exchange, scope: Scope, receive: Receive) -> None:
        outer_send = exchange.outer_send
        # 3. The header guard (and what the body limit needs to know), in one pass over the headers.
        max_header = self.max_header_bytes
        total = authorizations = 0
        too_large = None
        declared: int | None = None
        count_body = False
        for name, value in scope["headers"]:
            size = len(name) + len(value)
            total += size
            if size > max_header and too_large is None:
                too_large = name.decode("latin-1")
            if name == b"authorization":
                authorizations += 1
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    count_body = True
                else:
                    declared = length if declared is None else max(declared, length)
            elif name == b"transfer-encoding":
                count_body = True
        refusal = header_refusal(
            too_large,
            total,
            authorizations,
            max_header_bytes=max_header,
            max_total_bytes=self.max_total_header_bytes,
        )
        if refusal is not None:
            await refusal(scope, receive, outer_send)
            return
        # 4. The body limit: a declared length over it is refused at once; an undeclared one is counted.
        if declared is not None and declared > self.body_limit.max_bytes:
            await self.body_limit.refuse(scope, receive, outer_send)
            return
        # 5. The auth-failure throttle.
        if scope["path"].startswith(THROTTLED_PREFIXES):
            address = exchange.client_address()
            throttled = throttled_response(self.throttle, address)
            if throttled is not None:
                await throttled(scope, receive, outer_send)
                return
            exchange.throttled_address = address
        elif not count_body:
            await self.app(scope, receive, outer_send)
            return
        await self.app(scope, exchange.limited_receive if count_body else receive, exchange.inner_send)


class _Exchange(OutageMarker):
    """One request's state across the steps: the outage marker (``hit``), whether the answer has started, the
    body counted so far and whether it was refused, and the address whose 401s count (``None``: none do)."""

    __slots__ = ("door", "receive", "refused", "replaced", "scope", "seen", "send", "started", "throttled_address")

    def __init__(self, door: FrontDoorMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self.hit = False
        self.door = door
        self.scope = scope
        self.receive = receive
        self.send = send
        self.started = self.replaced = self.refused = False
        self.seen = 0
        self.throttled_address: str | None = None

    def client_address(self) -> str:
        return client_address(self.scope) or "unknown"

    async def outer_send(self, message: Message) -> None:
        """The outage step's ``send``: a noted outage replaces the answer by the 503."""
        if message["type"] == "http.response.start":
            self.started = True
            if self.hit:
                self.replaced = True
                await answer_unavailable(self.door.outage, self.scope, self.receive, self.send, None)
                return
        elif self.replaced:
            return
        await self.send(message)

    async def inner_send(self, message: Message) -> None:
        """The app's ``send``: a 401 counts against the address; after a 413, nothing the app says is sent."""
        if self.throttled_address is not None and message["type"] == "http.response.start" and message["status"] == 401:
            self.door.throttle.failed(self.throttled_address)
        if self.refused:
            return
        await self.outer_send(message)

    async def limited_receive(self) -> Message:
        # The 413 is sent from here, at the chunk that crosses the limit: raising instead would reach the
        # framework's body parser, which turns any error while reading into a 400. The app then sees the
        # client as gone, and whatever it answers is dropped.
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            limit = self.door.body_limit
            if self.seen > limit.max_bytes:
                if self.started:
                    raise BodyTooLarge
                self.refused = True
                await limit.refuse(
                    self.scope, self.receive, self.outer_send, body_done=not message.get("more_body", False)
                )
                return {"type": "http.disconnect"}
        return message
