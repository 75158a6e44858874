"""Telling "the database is unreachable" apart from a bug, without importing any web framework.

An outage is a fault outside the process: callers should answer it as *temporarily unavailable* (HTTP 503 with
``Retry-After``) and log it once, not as an internal error with a traceback per request. It is recognised by the
exception and everything it was raised from (``__cause__``/``__context__``, exception groups): connection failures
(``OSError``, timeouts), SQLAlchemy's disconnect errors, operational errors that name a connection, and
PostgreSQL's SQLSTATE class 08 (connection exception) and 57P01-57P03 (shutting down, starting up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["OutageLog", "is_database_unavailable"]

_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03")
#: An OperationalError is an outage only when it says so (SQLite's "no such table" is one too, and a bug).
_OPERATIONAL_MARKERS = (
    "connect",
    "connection",
    "closed",
    "refused",
    "terminat",
    "shutting down",
    "starting up",
    "unable to open database",
    "database is locked",
    "disk i/o error",
    "timeout",
    "timed out",
)
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # connection refused/reset, and asyncpg's ConnectionDoesNotExistError's relatives
    asyncio.TimeoutError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # the connection pool is exhausted
)


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    return state if isinstance(state, str) else ""


def _unavailable_here(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE_TYPES):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError):
        text = str(exc.orig if exc.orig is not None else exc).lower()
        if any(marker in text for marker in _OPERATIONAL_MARKERS):
            return True
    state = _sqlstate(exc)
    return (
        state.startswith("08")
        or state in _UNAVAILABLE_SQLSTATES
        or type(exc).__name__
        in {
            "ConnectionDoesNotExistError",
            "CannotConnectNowError",
            "ConnectionFailureError",
        }
    )


def is_database_unavailable(exc: BaseException, *, _depth: int = 0) -> bool:
    """Whether ``exc`` (or what it was raised from) says the database cannot be reached right now."""
    if _depth > 20:
        return False
    if _unavailable_here(exc):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(is_database_unavailable(sub, _depth=_depth + 1) for sub in exc.exceptions)
    cause = exc.__cause__ or exc.__context__
    return cause is not None and is_database_unavailable(cause, _depth=_depth + 1)


class OutageLog:
    """An outage as one event in the log: a line when the first request fails, a summary line every
    ``summary_every`` seconds while it lasts, and one line when it ends.

    It ends only when a database operation succeeds (``watch`` hooks every statement the engine completes),
    never because some request finished without a 503: ``/healthz``, a static file or a malformed key needs no
    database and says nothing about it, so probes would otherwise end and restart the outage every few seconds.
    """

    def __init__(
        self, logger: logging.Logger, *, summary_every: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = logger
        self._summary_every = summary_every
        self._clock = clock
        self._failed = 0  # requests answered 503 in the current outage
        self._last_summary = 0.0

    @property
    def failed_requests(self) -> int:
        """Requests answered 503 since the outage began (0: no outage)."""
        return self._failed

    def request_failed(self, cause: str) -> None:
        """A request was answered 503 because of ``cause`` (one line, no traceback)."""
        self._failed += 1
        now = self._clock()
        if self._failed == 1:
            self._log.warning("database unreachable, answering 503 until it returns (%s)", cause)
            self._last_summary = now
        elif now - self._last_summary >= self._summary_every:
            self._log.warning("database still unreachable; %d requests answered 503 so far", self._failed)
            self._last_summary = now

    def database_succeeded(self) -> None:
        """A database operation succeeded: the outage, if any, is over."""
        if self._failed:
            self._log.info("database reachable again; %d requests were answered 503 meanwhile", self._failed)
            self._failed = 0

    def watch(self, engine: AsyncEngine) -> None:
        """End the outage when any statement on ``engine`` completes (a request's, or a background loop's)."""
        event.listen(engine.sync_engine, "after_cursor_execute", self._statement_completed)

    def _statement_completed(self, *_: object) -> None:
        if self._failed:  # the usual case costs one comparison
            self.database_succeeded()
