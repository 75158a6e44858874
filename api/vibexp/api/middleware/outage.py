"""While the database is unreachable, every request answers ``503 service_unavailable`` with ``Retry-After``.

The outermost application layer: an outage error raised anywhere below (key verification, the rate limiter, a
route, the commit) becomes a JSON 503 instead of a 500 with a traceback. Handlers that must catch errors themselves
(the MCP SDK turns exceptions into JSON-RPC results) call ``note_database_unavailable()``; the answer is then
replaced by the same 503, so MCP clients get the same HTTP answer as REST clients.

Logging: an outage is one event, not one per request (``vibexp.core.outage.OutageLog``). The first failed request
logs one line (the cause, no traceback), later ones one summary line a minute, and the first database operation
that succeeds again logs the recovery (a request that needs no database, such as ``/healthz``, ends nothing). The
access log still has its one line per request.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api.errors import error_response
from vibexp.core.outage import OutageLog, is_database_unavailable

__all__ = ["RETRY_AFTER_SECONDS", "OutageMiddleware", "note_database_unavailable"]

log = logging.getLogger(__name__)

#: What ``Retry-After`` says: a database restart or fail-over usually takes seconds.
RETRY_AFTER_SECONDS = 2


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
    def __init__(self, app: ASGIApp, *, outage: OutageLog | None = None) -> None:
        self.app = app
        #: Shared with the engine it watches (``create_app``); without one, nothing ever ends an outage's log.
        self.outage = outage or OutageLog(log)

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
        self.outage.request_failed(_cause(exc))


def _cause(exc: BaseException | None) -> str:
    if exc is None:
        return "noted by a handler"
    while exc.__cause__ is not None and not isinstance(exc, OSError):
        exc = exc.__cause__
    first_line = str(exc).partition("\n")[0]
    return f"{type(exc).__name__}: {first_line}"[:300]
