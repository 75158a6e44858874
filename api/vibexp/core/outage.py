"""Telling "the database is unreachable" apart from a bug, without importing any web framework.

An outage is a fault outside the process: callers should answer it as *temporarily unavailable* (HTTP 503 with
``Retry-After``) and log it once, not as an internal error with a traceback per request. It is recognised by the
exception and everything it was raised from (``__cause__``/``__context__``, exception groups): connection failures
(``OSError``, timeouts), SQLAlchemy's disconnect errors, operational errors that name a connection, and
PostgreSQL's SQLSTATE class 08 (connection exception) and 57P01-57P03 (shutting down, starting up).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc

__all__ = ["is_database_unavailable"]

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
