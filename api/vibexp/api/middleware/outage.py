"""While the database is unreachable, every request answers ``503 service_unavailable`` with ``Retry-After``.

A step of the front door (``vibexp.api.middleware.pipeline``), around everything after the client address: an
outage error raised anywhere below (key verification, the rate limiter, a route, the commit) becomes a JSON 503
instead of a 500 with a traceback. Handlers that must catch errors themselves (the MCP SDK turns exceptions into
JSON-RPC results) call ``note_database_unavailable()``; the answer is then replaced by the same 503, so MCP clients
get the same HTTP answer as REST clients.

Logging: an outage is one event, not one per request (``vibexp.core.outage.OutageLog``). The first failed request
logs one line (the cause, no traceback), later ones one summary line a minute, and the first database operation
that succeeds again logs the recovery (a request that needs no database, such as ``/healthz``, ends nothing). The
access log still has its one line per request.
"""

from __future__ import annotations

import contextvars
import logging

from starlette.types import Receive, Scope, Send

from vibexp.api.errors import error_response
from vibexp.core.outage import OutageLog, is_database_unavailable

__all__ = [
    "RETRY_AFTER_SECONDS",
    "OutageMarker",
    "answer_unavailable",
    "end_watch",
    "is_database_unavailable",
    "note_database_unavailable",
    "note_failure",
    "watch_request",
]

log = logging.getLogger(__name__)

#: What ``Retry-After`` says: a database restart or fail-over usually takes seconds.
RETRY_AFTER_SECONDS = 2


class OutageMarker:
    """Per request: whether a handler noted an outage (the front door's per-request state derives from it)."""

    __slots__ = ("hit",)

    def __init__(self) -> None:
        self.hit = False


_current: contextvars.ContextVar[OutageMarker | None] = contextvars.ContextVar("vibexp_outage_marker", default=None)


def note_database_unavailable() -> None:
    """Called by a handler that caught an outage error itself: answer this request with 503 anyway."""
    marker = _current.get()
    if marker is not None:
        marker.hit = True


def watch_request(marker: OutageMarker) -> contextvars.Token[OutageMarker | None]:
    """Make ``marker`` the one ``note_database_unavailable`` sets, for this request (reset with the token)."""
    return _current.set(marker)


def end_watch(token: contextvars.Token[OutageMarker | None]) -> None:
    _current.reset(token)


async def answer_unavailable(
    outage: OutageLog, scope: Scope, receive: Receive, send: Send, exc: BaseException | None
) -> None:
    """The 503 with ``Retry-After`` (the outage noted once in the log)."""
    note_failure(outage, exc)
    response = error_response(
        503,
        "service_unavailable",
        "The database is unreachable right now; retry shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
    await response(scope, receive, send)


def note_failure(outage: OutageLog, exc: BaseException | None) -> None:
    outage.request_failed(_cause(exc))


def _cause(exc: BaseException | None) -> str:
    if exc is None:
        return "noted by a handler"
    while exc.__cause__ is not None and not isinstance(exc, OSError):
        exc = exc.__cause__
    first_line = str(exc).partition("\n")[0]
    return f"{type(exc).__name__}: {first_line}"[:300]
