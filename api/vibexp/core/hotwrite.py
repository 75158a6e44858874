"""One-row inserts on the write hot path: a Core ``INSERT`` compiled once, run as one autocommitted statement.

The write-side counterpart of ``vibexp.core.hotread``. Storing a memory is what an agent does most often, and it is
a single row that nothing else has to change with it. Through an ORM session it cost a unit of work, a flush and a
commit: on aiosqlite a cursor, an execute, a close and a commit, each a hop to the connection's thread, and on
asyncpg BEGIN, INSERT and COMMIT, three round trips. A single statement is its own transaction (atomic, durable
once the driver returns, visible to every replica at once), so ``RowInserter`` runs it alone in autocommit mode:
one round trip on PostgreSQL, on a connection held for the hot path (``vibexp.core.pg_direct``); on SQLite no hop
at all, on the event loop thread's own connection (``vibexp.core.sqlite_direct``), or one hop through the pool when
another process holds the write lock. Use it only where the insert is the whole change; a write that must change
more rows with it (a prompt and its version, a change and its audit event) belongs in a session.

Values are converted with SQLAlchemy's own bind processors for the dialect (UTC datetimes, JSON lists), so the row
is the one the ORM would have written. Errors leave as SQLAlchemy's ``IntegrityError`` (a unique or foreign key
violation) or ``OperationalError`` (a lost connection, invalidated with the pool as the hot read does). An insert
is never repeated: a lost connection may have committed it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from vibexp.core import pg_direct, sqlite_direct
from vibexp.core.db import writing
from vibexp.core.pg_direct import connection_lost

__all__ = ["RowInserter"]

#: SQLSTATE class 23: integrity constraint violation (PostgreSQL); sqlite3 raises its own IntegrityError class.
_INTEGRITY_SQLSTATE = "23"


def _is_integrity_error(exc: BaseException) -> bool:
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_INTEGRITY_SQLSTATE):
        return True
    return type(exc).__name__ == "IntegrityError"


class RowInserter:
    """``await inserter.insert(values)``: insert one row of ``table``, given a value for each of its columns."""

    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self._engine = engine
        dialect = engine.dialect
        columns = [column.key for column in table.columns]
        compiled = insert(table).compile(dialect=dialect, column_keys=columns)
        self._sql = str(compiled)
        self._order: Sequence[str] = tuple(compiled.positiontup or ())  # column names in parameter order
        self._processors: dict[str, Callable[[Any], Any] | None] = {
            name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
        }
        self._sqlite = dialect.name == "sqlite"

    async def insert(self, values: dict[str, Any]) -> None:
        if values.keys() != self._processors.keys():
            raise TypeError(f"expected a value for each of the columns {', '.join(sorted(self._processors))}")
        params = tuple(self._bind(name, values[name]) for name in self._order)
        if self._sqlite:
            if await self._sqlite_direct(params):
                return
        elif await self._held(params):
            return
        # On SQLite this process's writers take turns (see vibexp.core.db.writing), for the one hop only.
        async with writing(self._engine), self._engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                if self._sqlite:
                    await self._sqlite_autocommit(driver, params)
                else:
                    await driver.execute(self._sql, *params)  # outside a transaction: its own, committed
            except Exception as exc:
                if _is_integrity_error(exc):
                    raise IntegrityError(self._sql, params, exc) from exc
                lost = connection_lost(exc)
                if lost:
                    await conn.invalidate()
                    await self._engine.dispose(close=False)
                error = OperationalError if lost or self._sqlite else DBAPIError
                raise error(self._sql, params, exc, connection_invalidated=lost) from exc

    async def _held(self, params: tuple[Any, ...]) -> bool:
        """The insert on one of the connections held for the hot path (``vibexp.core.pg_direct``); ``False`` if
        none is free (nothing was written then), so a pooled connection does it."""
        connections = pg_direct.held(self._engine)
        held = None if connections is None else await connections.acquire()
        if connections is None or held is None:
            return False
        try:
            async with connections.using(held) as driver:
                await driver.execute(self._sql, *params)  # outside a transaction: its own, committed
        except Exception as exc:
            if connection_lost(exc):  # never repeated: the lost connection may have committed it
                raise OperationalError(self._sql, params, exc, connection_invalidated=True) from exc
            if _is_integrity_error(exc):
                raise IntegrityError(self._sql, params, exc) from exc
            raise DBAPIError(self._sql, params, exc) from exc
        return True

    async def _sqlite_direct(self, params: tuple[Any, ...]) -> bool:
        """The insert on the event loop thread's own connection (``vibexp.core.sqlite_direct``), in this process's
        writer turn; ``False`` if that connection is not available or met another process's write lock (nothing
        was written then: SQLITE_BUSY comes before the statement starts), so the pool's connection does it."""
        conn = sqlite_direct.direct(self._engine)
        if conn is None:
            return False
        async with writing(self._engine):
            try:
                conn.execute(self._sql, params)
            except sqlite3.Error as exc:
                if sqlite_direct.busy(exc):
                    return False
                if isinstance(exc, sqlite3.IntegrityError):
                    raise IntegrityError(self._sql, params, exc) from exc
                raise OperationalError(self._sql, params, exc) from exc
        return True

    async def _sqlite_autocommit(self, driver: Any, params: tuple[Any, ...]) -> None:
        # Python's sqlite3 opens a transaction before a DML statement (to be committed in a second hop) unless the
        # connection's isolation_level is None. The checked-out connection has no transaction open (the pool reset
        # rolled any back), so switching to autocommit for this statement commits nothing else; the previous mode
        # is restored before the connection goes back to the pool.
        previous = driver.isolation_level
        driver.isolation_level = None
        try:
            await driver.execute_fetchall(self._sql, params)
        finally:
            driver.isolation_level = previous

    def _bind(self, name: str, value: Any) -> Any:
        process = self._processors[name]
        return value if process is None else process(value)
