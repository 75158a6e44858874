"""One-row reads on the request hot path: a Core ``SELECT`` compiled once, run in a single driver call.

The ORM session costs, for one row by primary key, an identity map, a unit of work, a transaction (BEGIN/COMMIT,
or on aiosqlite a cursor, execute, fetch, close and commit — each a hop to the connection's thread) and a rollback
on return. A read needs none of it: in autocommit mode each statement sees every transaction committed before it,
so a replica reads its own and every other replica's writes (read-your-writes holds; nothing here is cached but the
compiled SQL). On PostgreSQL ``RowReader`` runs the statement on one of the connections held for the hot path
(``vibexp.core.pg_direct``; a pooled one when all are busy) as one driver call (``asyncpg.fetchrow``: one round
trip, the statement prepared once per connection by asyncpg). On SQLite
it runs it on the event loop thread's own plain ``sqlite3`` connection (``vibexp.core.sqlite_direct``: no hop to
an aiosqlite thread at all), or through the pool (``aiosqlite.execute_fetchall``, one hop) when that connection
meets another's lock or the database is in memory. It converts the columns with SQLAlchemy's own result
processors for the dialect, so values come back exactly as the ORM would return them (UTC datetimes, JSON lists).

Errors leave as SQLAlchemy's ``DBAPIError`` (``OperationalError`` for a lost connection), as from any other query.
A lost PostgreSQL connection is invalidated and the pool recreated, as SQLAlchemy does for its own statements, and
the read is repeated once on a new connection, so a restarted database is reconnected to by the very request that
finds the old connections dead (there is no pre-ping on checkout any more, see ``vibexp.core.db``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from vibexp.core import pg_direct, sqlite_direct
from vibexp.core.pg_direct import connection_lost

__all__ = ["RowReader", "connection_lost"]


class _LostConnection(Exception):
    """The connection was gone; the read may be repeated on a new one."""


class RowReader:
    """``await reader.one(name=value, ...)``: the first row of ``query`` as a dict of column name to value, or
    ``None``. ``query`` takes its parameters as named ``bindparam``s."""

    def __init__(self, engine: AsyncEngine, query: Select[Any]) -> None:
        self._engine = engine
        dialect = engine.dialect
        compiled = query.compile(dialect=dialect)
        self._sql = str(compiled)
        self._param_names: Sequence[str] = tuple(compiled.positiontup or ())
        self._columns = [str(column.key) for column in query.selected_columns]
        self._processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in query.selected_columns
        ]
        self._sqlite = dialect.name == "sqlite"

    async def one(self, **values: Any) -> dict[str, Any] | None:
        if values.keys() != set(self._param_names):
            raise TypeError(f"expected the parameters {', '.join(sorted(set(self._param_names)))}")
        params = tuple(values[name] for name in self._param_names)
        if self._sqlite:
            conn = sqlite_direct.direct(self._engine)
            if conn is not None:
                try:
                    row = conn.execute(self._sql, params).fetchone()
                except sqlite3.Error as exc:
                    if not sqlite_direct.busy(exc):
                        raise OperationalError(self._sql, params, exc) from exc
                    # Another connection's lock (rare for a WAL read): through the pool, where waiting is cheap.
                else:
                    return None if row is None else self._convert(row)
        try:
            return await self._run(params)
        except _LostConnection:
            # The server dropped the pooled connections (a restart, a failover): the pool is new now, and a read
            # is safe to repeat, so the request that notices the restart is answered too.
            return await self._run(params, retry=False)

    async def _run(self, params: tuple[Any, ...], *, retry: bool = True) -> dict[str, Any] | None:
        if not self._sqlite:
            connections = pg_direct.held(self._engine)
            held = None if connections is None else await connections.acquire()
            if connections is not None and held is not None:
                found = await self._fetch_held(connections, held, params, retry=retry)
                return None if found is None else self._convert(found)
        async with self._engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                if self._sqlite:
                    rows = await driver.execute_fetchall(self._sql, params)
                    row: Sequence[Any] | None = rows[0] if rows else None
                else:
                    row = await driver.fetchrow(self._sql, *params)
            except Exception as exc:
                lost = connection_lost(exc)
                if lost:
                    await conn.invalidate()
                    await self._engine.dispose(close=False)  # the pool's other connections went with the server
                    if retry:
                        raise _LostConnection from exc
                error = OperationalError if lost or self._sqlite else DBAPIError
                raise error(self._sql, params, exc, connection_invalidated=lost) from exc
        return None if row is None else self._convert(row)

    async def _fetch_held(
        self, connections: pg_direct.HeldConnections, held: pg_direct.Held, params: tuple[Any, ...], *, retry: bool
    ) -> Sequence[Any] | None:
        try:
            async with connections.using(held) as driver:
                row: Sequence[Any] | None = await driver.fetchrow(self._sql, *params)
        except Exception as exc:
            if not connection_lost(exc):
                raise DBAPIError(self._sql, params, exc) from exc
            if retry:
                raise _LostConnection from exc
            raise OperationalError(self._sql, params, exc, connection_invalidated=True) from exc
        return row

    def _convert(self, row: Sequence[Any]) -> dict[str, Any]:
        # sqlite3 rows are tuples; an asyncpg Record iterates over its values in column order, too.
        return {
            name: value if process is None else process(value)
            for name, value, process in zip(self._columns, row, self._processors, strict=True)
        }
