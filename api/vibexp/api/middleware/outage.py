"""While the database is unreachable, every request answers ``503 service_unavailable`` with ``Retry-After``.

The outermost application layer: an outage error raised anywhere below (key verification, the rate limiter, a
route, the commit) becomes a JSON 503 instead of a 500 with a traceback. Handlers that must catch errors themselves
(the MCP SDK turns exceptions into JSON-RPC results) call ``note_database_unavailable()``; the answer is then
replaced by the same 503, so MCP clients get the same HTTP answer as REST clients.

Logging: an outage is one event, not one per request. The first failed request logs one line (the cause, no
traceback), later ones one summary line a minute, and the first request that succeeds again logs the recovery.
The access log still has its one line per request.
"""

from __future__ import annotations

import contextvars
import logging
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api.errors import error_response
from vibexp.core.outage import is_database_unavailable

__all__ = ["RETRY_AFTER_SECONDS", "OutageMiddleware", "note_database_unavailable"]

log = logging.getLogger(__name__)

#: What ``Retry-After`` says: a database restart or fail-over usually takes seconds.
RETRY_AFTER_SECONDS = 2
#: While an outage lasts, one summary line per this many seconds.
SUMMARY_EVERY = 60.0


@dataclass(slots=True)
class _Marker:
    hit: bool = False


_current: contextvars.ContextVar[_Marker | None] = contextvars.ContextVar("vibexp_outage_marker", default=None)


def note_database_unavailable() -> None:
    """Called by a handler that caught an outage error itself: answer this request with 503 anyway."""
    marker = _current.get()
    if marker is not None:
        marker.hit = True


class OutageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._failed = 0  # requests answered 503 in the current outage
        self._last_summary = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        marker = _Marker()
        token = _current.set(marker)
        started = replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                if marker.hit:
                    replaced = True
                    await self._unavailable(scope, receive, send, None)
                    return
            elif replaced:
                return
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            if not started:
                await self._unavailable(scope, receive, send, exc)
            else:  # the answer was already under way: it ends here, and the outage is still reported once
                self._note_failure(exc)
            return
        finally:
            _current.reset(token)
        if not replaced and self._failed:
            log.info("database reachable again; %d requests were answered 503 meanwhile", self._failed)
            self._failed = 0

    async def _unavailable(self, scope: Scope, receive: Receive, send: Send, exc: BaseException | None) -> None:
        self._note_failure(exc)
        response = error_response(
            503,
            "service_unavailable",
            "The database is unreachable right now; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        await response(scope, receive, send)

    def _note_failure(self, exc: BaseException | None) -> None:
        self._failed += 1
        now = time.monotonic()
        if self._failed == 1:
            log.warning("database unreachable, answering 503 until it returns (%s)", _cause(exc))
            self._last_summary = now
        elif now - self._last_summary >= SUMMARY_EVERY:
            log.warning("database still unreachable; %d requests answered 503 so far", self._failed)
            self._last_summary = now


def _cause(exc: BaseException | None) -> str:
    if exc is None:
        return "noted by a handler"
    while exc.__cause__ is not None and not isinstance(exc, OSError):
        exc = exc.__cause__
    first_line = str(exc).partition("\n")[0]
    return f"{type(exc).__name__}: {first_line}"[:300]
