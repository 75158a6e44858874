"""Change notifications for listening MCP clients: ``subscriptions/listen`` (protocol revision 2026-07-28).

At 2026-07-28 there is no standing GET stream: a client that wants change notifications POSTs a
``subscriptions/listen`` request, and the response to it IS the stream (SSE, even though this server answers
everything else with JSON; the SDK's modern HTTP entry makes that carve-out). ``Listeners`` serves that method in
place of the SDK's ``ListenHandler``, whose bus fans every event out to every stream: here each stream belongs to
one key, and hears only what happened in its key's account and what that key may read now:

* ``notifications/prompts/list_changed`` when a prompt of the account is created, changed, deleted or has its
  ``production`` label moved, if the key holds ``prompts:read``;
* ``notifications/resources/list_changed`` when an artifact is created, changed or deleted, and
  ``notifications/resources/updated`` for an ``artifact://{project}/{slug}`` the stream subscribed to, if the key
  holds ``artifacts:read``;
* ``notifications/tools/list_changed`` when the key's effective scopes change (its tool list is its scopes'): its
  own scopes, or its owner's role (a personal key acts within its owner's role ceiling, ``access.ceiling``: a
  demotion narrows what the stream hears and lists, a promotion widens it back); a key that is revoked, suspended or
  deleted, or whose owner left the account, ends its streams; so does the suspension of the account.

A stream also ends when its key expires (at its ``expires_at``; the client's next listen is refused as expired).

A stream opened with an OAuth access token (``/mcp/v1/connect``) follows its grant the same way (``ChangeKind.grant``
changes): it ends when the grant is revoked (by a person, the client, a leak report, the person's removal) and
when its token expires or is replaced by a refresh (the token it was opened with is refused from then on).

The changes come from ``vibexp.core.content.changes.ChangeFeed``, which polls the database (every replica's writes,
within a second) while at least one stream listens anywhere in the process.

Handshake-era clients (2025-06-18 / 2025-03-26 ``initialize``: Claude Code, Cursor, VS Code) listen on the
streamable HTTP transport's standalone stream instead: a ``GET`` of the MCP endpoint with ``Accept:
text/event-stream`` (``EventStreams``; the spec lets a server without sessions answer it). The same ``_Stream``
decides what it hears, for the key of the GET: the three list-changed notifications (``HANDSHAKE_NOTIFICATIONS``),
as plain JSON-RPC notifications in SSE ``message`` events. Not ``resources/updated``: that era asks for it with a
separate ``resources/subscribe`` POST, which a stateless server cannot tie to any GET stream, so it is not served
and ``resources.subscribe`` stays false. A GET stream writes an SSE comment every ``keepalive_seconds`` of silence
(so proxies keep it), opens with ``retry:`` (how soon the client connects again once the stream ends), and ends,
with its response completed, when a listen stream would; a GET past a cap is refused before any stream, 429 (this
key) or 503 (this process) with the API's error body.

Bounded: at most ``per_key`` streams per key and ``per_process`` in all, listen and GET streams counted together
(past either cap a listen request is refused with ``-32000`` and ``data.code == "too_many_listeners"`` before
anything is acknowledged); at most
``MAX_RESOURCE_SUBSCRIPTIONS`` URIs per stream. A stream with nothing to say for ``idle_seconds`` ends gracefully
(the client listens again), and so does one whose key reaches its ``expires_at``. Events waiting for a slow client
are coalesced in a set (a list-changed is a list-changed however many times it happened), so a client that never
reads costs a bounded amount of memory; a notification the client does not take within ``send_timeout`` seconds ends
its stream. When the client goes away the SDK cancels the handler (a GET stream
notices the ``http.disconnect`` itself), and ``Listeners.opened`` releases the slot and the feed subscription:
nothing is left behind.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import anyio
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import (
    SUBSCRIPTION_ID_META_KEY,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
    event_to_notification,
)
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    SubscriptionFilter,
    SubscriptionsAcknowledgedNotification,
    SubscriptionsAcknowledgedNotificationParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from vibexp.api.errors import error_response
from vibexp.api.mcp.context import principal_of, runtime_of
from vibexp.api.mcp.errors import protocol_errors
from vibexp.core.access import CredentialKind, Scope
from vibexp.core.clock import utcnow
from vibexp.core.content.changes import ACCOUNT_SUSPENDED, Change, ChangeKind
from vibexp.core.keys.verifier import Principal
from vibexp.core.runtime import Runtime

__all__ = [
    "HANDSHAKE_NOTIFICATIONS",
    "KEEPALIVE_SECONDS",
    "MAX_RESOURCE_SUBSCRIPTIONS",
    "SSE_HEADERS",
    "SSE_KEEPALIVE",
    "TOO_MANY_LISTENERS",
    "EventStreams",
    "ListenerRefused",
    "Listeners",
    "Watched",
    "until_disconnect",
    "while_connected",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: JSON-RPC error code of a listen request past a cap (the implementation-defined server-error range).
TOO_MANY_LISTENERS = -32000
#: How many ``artifact://`` URIs one stream may subscribe to.
MAX_RESOURCE_SUBSCRIPTIONS = 1000
#: A GET stream with nothing to say writes an SSE comment this often, so proxies do not cut it as idle.
KEEPALIVE_SECONDS = 20.0
#: The ``retry:`` a GET stream opens with: a client connects again this long after the stream ends.
RECONNECT_MS = 1000
_ACTIVE = "active"


class _Stream:
    """One open listen stream: its key's current view (its effective scopes and its expiry), and the events waiting
    to be written (a set: coalesced)."""

    def __init__(
        self,
        tenant_id: str,
        key_id: str,
        granted: frozenset[str],
        honored: SubscriptionFilter,
        expires_at: datetime | None = None,
        forget_key: Callable[[], None] | None = None,
        *,
        grant: bool = False,
    ) -> None:
        self.tenant_id = tenant_id
        self.key_id = key_id
        #: Opened with an OAuth access token: ``key_id`` is the grant's id, ``expires_at`` the token's expiry.
        self.grant = grant
        self.granted = granted
        self.expires_at = expires_at
        #: Drops the key from this process's verifier cache (``KeyVerifier.invalidate``).
        self._forget_key = forget_key
        self.honored = honored
        self.uris = frozenset(honored.resource_subscriptions or ())
        self.pending: dict[ServerEvent, None] = {}  # insertion-ordered set
        self.wake = anyio.Event()
        self.ended = False

    def post(self, event: ServerEvent) -> None:
        self.pending[event] = None
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def hear(self, change: Change) -> None:
        """Turn one change of the feed into this stream's events (module docstring)."""
        if change.tenant_id != self.tenant_id:
            return
        if change.kind is ChangeKind.account:
            if change.status == ACCOUNT_SUSPENDED:  # its keys are refused now (403 account_suspended)
                self.end()
            return
        if change.kind is (ChangeKind.grant if self.grant else ChangeKind.key):
            if change.object_id == self.key_id:
                self._key_changed(change)
            return
        if change.kind in (ChangeKind.key, ChangeKind.grant):  # another credential's
            return
        if change.kind is ChangeKind.prompt:
            if self.honored.prompts_list_changed and Scope.prompts_read in self.granted:
                self.post(PromptsListChanged())
            return
        if Scope.artifacts_read not in self.granted:
            return
        if self.honored.resources_list_changed:
            self.post(ResourcesListChanged())
        uri = f"artifact://{change.name}"
        if uri in self.uris:
            self.post(ResourceUpdated(uri=uri))

    def seconds_left(self, idle_seconds: float) -> float:
        """How long the stream may wait for news: the idle time, or less if its key expires sooner (<= 0: expired)."""
        if self.expires_at is None:
            return idle_seconds
        return min(idle_seconds, (self.expires_at - utcnow()).total_seconds())

    def _key_changed(self, change: Change) -> None:
        # A credential refused from now on (revoked, deleted, its person gone; for a grant, its token replaced):
        # the stream ends, and this process's cache forgets it, so the client's next request is refused too.
        if (
            change.deleted
            or change.status != _ACTIVE
            or change.orphaned
            or (self.grant and change.expires_at != self.expires_at)
        ):
            if self._forget_key is not None:
                self._forget_key()
            self.end()
            return
        if change.expires_at != self.expires_at:  # the wait is re-timed (the loop wakes with nothing to send)
            self.expires_at = change.expires_at
            self.wake.set()
        granted = change.granted  # the key's scopes within its owner's role ceiling, as the verifier computes them
        if granted == self.granted:
            return
        # The verifier polls on its own schedule: a client told "tools changed" that asks again before that poll
        # would be answered (and would cache for ttlMs) from the key as it was. Forget the key first.
        if self._forget_key is not None:
            self._forget_key()
        before, self.granted = self.granted, granted
        if self.honored.tools_list_changed:
            self.post(ToolsListChanged())
        if self.honored.prompts_list_changed and (Scope.prompts_read in before) != (Scope.prompts_read in granted):
            self.post(PromptsListChanged())
        if self.honored.resources_list_changed and (Scope.artifacts_read in before) != (
            Scope.artifacts_read in granted
        ):
            self.post(ResourcesListChanged())


def _forget_key(runtime: Runtime, key_id: str) -> Callable[[], None]:
    verifier = runtime.verifier
    return lambda: verifier.invalidate(key_ids=(key_id,))


def _forget_grant(runtime: Runtime, grant_id: str) -> Callable[[], None]:
    grants = runtime.grants
    return lambda: grants.invalidate(grant_ids=(grant_id,))


def _honored(requested: SubscriptionFilter) -> SubscriptionFilter:
    """What the stream will deliver, for the acknowledgement: every kind asked for (as the SDK's handler)."""
    return SubscriptionFilter(
        tools_list_changed=True if requested.tools_list_changed else None,
        prompts_list_changed=True if requested.prompts_list_changed else None,
        resources_list_changed=True if requested.resources_list_changed else None,
        resource_subscriptions=list(requested.resource_subscriptions) if requested.resource_subscriptions else None,
    )


class ListenerRefused(Exception):
    """A stream past a cap: the key's (``server_full`` false) or the process's (``server_full`` true)."""

    def __init__(self, message: str, *, server_full: bool) -> None:
        super().__init__(message)
        self.message = message
        self.server_full = server_full


class Listeners:
    """Every change-notification stream of the process: the ``subscriptions/listen`` handler (``__call__``) and
    the handshake era's GET stream (``EventStreams``) share its caps, its bookkeeping and its loop (``_pump``)."""

    def __init__(
        self,
        *,
        per_key: int = 8,
        per_process: int = 1000,
        idle_seconds: float = 600.0,
        send_timeout: float = 30.0,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.per_key = per_key
        self.per_process = per_process
        self.idle_seconds = idle_seconds
        self.send_timeout = send_timeout
        self.keepalive_seconds = keepalive_seconds
        self._by_key: Counter[str] = Counter()
        self._open = 0

    @property
    def open(self) -> int:
        """Streams open in this process now (listen and GET streams alike)."""
        return self._open

    def open_for(self, key_id: str) -> int:
        return self._by_key[key_id]

    async def __call__(
        self, ctx: ServerRequestContext[Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:  # the handshake era's channel is the GET stream
            raise MCPError(METHOD_NOT_FOUND, "Method not found")
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(INVALID_REQUEST, "subscriptions/listen requires a request id")
        with protocol_errors():
            principal = principal_of(ctx)
            runtime = runtime_of(ctx)
        uris = params.notifications.resource_subscriptions or []
        if len(uris) > MAX_RESOURCE_SUBSCRIPTIONS:
            raise MCPError(
                INVALID_PARAMS,
                f"At most {MAX_RESOURCE_SUBSCRIPTIONS} resource subscriptions per stream, not {len(uris)}",
                data={"code": "invalid_input"},
            )
        honored = _honored(params.notifications)
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}

        async def deliver(events: list[ServerEvent]) -> None:
            for event in events:
                await self._send(ctx, event_to_notification(event, meta), subscription_id)

        try:
            # Subscribed before the acknowledgement: a change made while it is being written is kept, not lost.
            async with self.opened(principal, honored, runtime) as stream:
                acknowledged = SubscriptionsAcknowledgedNotification(
                    params=SubscriptionsAcknowledgedNotificationParams(notifications=honored, _meta=meta)
                )
                await self._send(ctx, acknowledged, subscription_id)
                await self.pump(stream, deliver)
        except ListenerRefused as refused:  # before anything is acknowledged
            raise MCPError(TOO_MANY_LISTENERS, refused.message, data={"code": "too_many_listeners"}) from None
        except TimeoutError:
            log.info(
                "listen stream %r: the client took no notification for %s s; ended", subscription_id, self.send_timeout
            )
        return SubscriptionsListenResult(_meta=meta)

    @asynccontextmanager
    async def opened(
        self, principal: Principal, honored: SubscriptionFilter, runtime: Runtime
    ) -> AsyncIterator[_Stream]:
        """A stream for ``principal``'s key, subscribed to the feed and counted, released on the way out however
        that happens (a cancelled task included); ``ListenerRefused`` past a cap, before anything is held."""
        key_id = principal.key_id
        if self._by_key[key_id] >= self.per_key:
            message = f"This API key already has {self.per_key} open listen streams (the most allowed)"
            raise ListenerRefused(message, server_full=False)
        if self._open >= self.per_process:
            message = f"This server already has {self.per_process} open listen streams (the most allowed)"
            raise ListenerRefused(message, server_full=True)
        grant = principal.credential is CredentialKind.grant
        # An OAuth access token's stream: the grant's id is the key id, its cache the token verifier's.
        forget = _forget_grant(runtime, key_id) if grant else _forget_key(runtime, key_id)
        stream = _Stream(
            principal.tenant_id, key_id, principal.granted, honored, principal.expires_at, forget, grant=grant
        )
        unsubscribe = runtime.content_changes.subscribe(stream.hear)
        self._by_key[key_id] += 1
        self._open += 1
        try:
            yield stream
        finally:
            unsubscribe()
            self._open -= 1
            self._by_key[key_id] -= 1
            if self._by_key[key_id] <= 0:
                del self._by_key[key_id]

    async def pump(
        self,
        stream: _Stream,
        deliver: Callable[[list[ServerEvent]], Awaitable[None]],
        *,
        keepalive: float | None = None,
    ) -> None:
        """Hand ``deliver`` each batch of ``stream``'s events until the stream ends, its key expires, or it had
        nothing to say for ``idle_seconds``; with ``keepalive``, also an empty batch after each ``keepalive``
        seconds of silence (which does not count as saying something)."""
        idle_until = anyio.current_time() + self.idle_seconds
        while not stream.ended:
            seconds_left = stream.seconds_left(idle_until - anyio.current_time())
            if seconds_left <= 0:  # idle, or the key expired: nothing more is sent with it
                return
            wait = seconds_left if keepalive is None else min(seconds_left, keepalive)
            with anyio.move_on_after(wait):
                await stream.wake.wait()
            if not stream.wake.is_set():
                if wait < seconds_left:
                    await deliver([])
                    continue
                return  # idle or expired: end gracefully, the client listens (or connects) again
            stream.wake = anyio.Event()
            idle_until = anyio.current_time() + self.idle_seconds
            events, stream.pending = list(stream.pending), {}
            if events:
                await deliver(events)

    async def _send(self, ctx: ServerRequestContext[Any], notification: Any, subscription_id: Any) -> None:
        with anyio.fail_after(self.send_timeout):
            await ctx.session.send_notification(notification, related_request_id=subscription_id)


#: What a handshake-era GET stream delivers: the three list-changed kinds. Not ``resources/updated``: that era
#: subscribes with a separate ``resources/subscribe`` POST, which a stateless server cannot tie to a GET stream.
HANDSHAKE_NOTIFICATIONS = SubscriptionFilter(
    tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True
)
#: Sent first: how long a client waits before it connects again after the stream ends (idle, expiry), and a comment.
SSE_OPENING = f"retry: {RECONNECT_MS}\n: VibeXP change notifications\n\n".encode()
SSE_KEEPALIVE = b": keep-alive\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
]


def sse_event(event: ServerEvent) -> bytes:
    """One notification as an SSE ``message`` event: a JSON-RPC notification without ``_meta`` (no subscription)."""
    notification = event_to_notification(event, {})
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": notification.method}
    if isinstance(event, ResourceUpdated):  # not sent on GET streams today; framed correctly all the same
        body["params"] = {"uri": event.uri}
    return b"event: message\ndata: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


async def until_disconnect(receive: Receive) -> None:
    """Return when the client has gone away (the request body, already read or not, then ``http.disconnect``)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass(slots=True)
class Watched(Generic[T]):
    """What ``while_connected`` saw: the work's result (``None`` if it did not finish) and whether the client went
    away (``gone``), for a stalled client because a write timed out (``stalled``)."""

    result: T | None = None
    gone: bool = False
    stalled: bool = False


async def while_connected(receive: Receive, work: Callable[[], Awaitable[T]]) -> Watched[T]:
    """Run ``work`` while watching the request for ``http.disconnect``: a client that goes away cancels it; one that
    stops reading (a write's ``TimeoutError``) or cannot be written to (``OSError``) counts as gone too."""
    watched: Watched[T] = Watched()
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            await until_disconnect(receive)
            watched.gone = True
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            watched.result = await work()
        except TimeoutError:
            watched.gone = watched.stalled = True
        except OSError:
            watched.gone = True
        group.cancel_scope.cancel()
    return watched


class EventStreams:
    """The handshake era's standalone GET stream on the MCP endpoint, for the key of the request (module
    docstring). ``McpFrontDoor`` calls it for an authenticated ``GET`` that accepts ``text/event-stream``."""

    def __init__(self, listeners: Listeners, runtime: Runtime) -> None:
        self.listeners = listeners
        self.runtime = runtime

    async def __call__(self, principal: Principal, scope: ASGIScope, receive: Receive, send: Send) -> None:
        listeners = self.listeners
        try:
            async with listeners.opened(principal, HANDSHAKE_NOTIFICATIONS, self.runtime) as stream:
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                await send({"type": "http.response.body", "body": SSE_OPENING, "more_body": True})
                if await self._relay(stream, receive, send):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except ListenerRefused as refused:
            # 429: this key holds too many; 503: the process does. Either way the client may try again later.
            status = 503 if refused.server_full else 429
            response = error_response(status, "too_many_listeners", refused.message, headers={"Retry-After": "60"})
            await response(scope, receive, send)

    async def _relay(self, stream: _Stream, receive: Receive, send: Send) -> bool:
        """Write the stream's events (and keep-alives) until it ends (``True``: the response may be completed) or
        the client goes away or stops reading (``False``)."""
        send_timeout = self.listeners.send_timeout

        async def deliver(events: list[ServerEvent]) -> None:
            body = b"".join(sse_event(event) for event in events) if events else SSE_KEEPALIVE
            with anyio.fail_after(send_timeout):
                await send({"type": "http.response.body", "body": body, "more_body": True})

        watched = await while_connected(
            receive, lambda: self.listeners.pump(stream, deliver, keepalive=self.listeners.keepalive_seconds)
        )
        if watched.stalled:
            log.info("GET event stream: the client took nothing for %s s; ended", send_timeout)
        return not watched.gone
