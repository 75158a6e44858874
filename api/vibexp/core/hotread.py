"""One-row reads on the request hot path: a Core ``SELECT`` compiled once, run in a single driver call.

The ORM session costs, for one row by primary key, an identity map, a unit of work, a transaction (BEGIN/COMMIT,
or on aiosqlite a cursor, execute, fetch, close and commit — each a hop to the connection's thread) and a rollback
on return. A read needs none of it: in autocommit mode each statement sees every transaction committed before it,
so a replica reads its own and every other replica's writes (read-your-writes holds; nothing here is cached but the
compiled SQL). On PostgreSQL ``RowReader`` runs the statement on one of the connections held for the hot path
(``vibexp.core.pg_direct``; a pooled one when all are busy) as one driver call (``asyncpg.fetchrow``: one round
trip, the statement prepared once per connection by asyncpg). Reads by key given a ``batched`` statement take turns
there (``_Batches``): those that arrive while one is in flight are answered together by the next statement, since
PostgreSQL spends about as much CPU on a one-row read as on a read of a dozen rows. On SQLite
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

import asyncio
import sqlite3
from collections import deque
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

    def __init__(self, engine: AsyncEngine, query: Select[Any], *, batched: Select[Any] | None = None) -> None:
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
        self._batches: _Batches | None = None
        if batched is not None and not self._sqlite:
            self._batches = _Batches(self, batched)

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
        elif self._batches is not None:
            return await self._batches.one(params)
        return await self._alone(params)

    async def _alone(self, params: tuple[Any, ...]) -> dict[str, Any] | None:
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


#: Handed to a waiting read by ``_Batches``: run the next batch (every read that has come meanwhile, this one too).
_RUN = object()
#: Handed to the reads of a batch whose statement failed: run alone (``RowReader._alone``: errors and the retry on a
#: lost connection exactly as without batching).
_ALONE = object()


class _Batches:
    """PostgreSQL reads by key taking turns, the reads that come while one is in flight answered by one statement.

    A read costs PostgreSQL ~40-60 µs of CPU whatever it fetches (the wake-up, the protocol, the transaction), on a
    2-core machine a sixth of a request (docs/performance.md). One read at a time runs per reader and event loop;
    the reads that arrive meanwhile wait, and the next turn fetches all of them at once with ``batched`` (the same
    columns, each key parameter compared with ``= ANY`` of an array), each row matched back to its read by the key
    columns. A read that finds none in flight runs at once with the one-row statement, so an idle server answers as
    before; each read still sees every write committed before it began (its statement starts after it arrived).
    A failed batch sends each of its reads to run alone, where its error (or the retry on a lost connection) is
    its own. The turns belong to one event loop (the server's): a read on another loop runs alone while that loop's
    turn is in flight, and a closed loop's turn is forgotten."""

    def __init__(self, reader: RowReader, batched: Select[Any]) -> None:
        self._reader = reader
        compiled = batched.compile(dialect=reader._engine.dialect)
        self._sql = str(compiled)
        names = tuple(compiled.positiontup or ())
        if sorted(names) != sorted(reader._param_names):
            raise ValueError("the batched statement must take the same parameters, as arrays")
        self._order = [reader._param_names.index(name) for name in names]
        self._keys = [reader._columns.index(name) for name in reader._param_names]
        self._busy = False
        self._waiting: deque[tuple[tuple[Any, ...], asyncio.Future[Any]]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None  #: the turns' event loop

    async def one(self, params: tuple[Any, ...]) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._busy and self._loop is not None and not self._loop.is_closed():
                return await self._reader._alone(params)  # another running loop holds the turn: never wait on it
            self._loop, self._busy = loop, False  # a closed loop's turn and waiting reads are gone with it
            self._waiting.clear()
        if self._busy:
            turn: asyncio.Future[Any] = loop.create_future()
            self._waiting.append((params, turn))
            try:
                answer = await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled() and turn.result() is _RUN:
                    self._pass_turn()  # handed the turn as it was cancelled: the next read takes it
                raise
            if answer is _ALONE:
                return await self._reader._alone(params)
            if answer is not _RUN:
                return answer  # type: ignore[no-any-return]
        self._busy = True
        batch = list(self._waiting)
        self._waiting.clear()
        if not batch:
            try:
                return await self._reader._alone(params)
            finally:
                self._pass_turn()
        rows: dict[tuple[Any, ...], dict[str, Any]] | None = None
        try:
            rows = await self._fetch([params, *(p for p, _ in batch)])
        except Exception:
            rows = None  # each read of the batch runs alone, below: its own error, or the retry
        except BaseException:  # cancelled mid-statement: the reads it carried wait for the next turn
            self._waiting.extendleft(reversed(batch))
            raise
        finally:
            self._pass_turn()
        for key, waiter in batch:
            if not waiter.done():
                waiter.set_result(_ALONE if rows is None else rows.get(key))
        if rows is None:
            return await self._reader._alone(params)
        return rows.get(params)

    def _pass_turn(self) -> None:
        while self._waiting:
            _, waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(_RUN)
                return
        self._busy = False

    async def _fetch(self, reads: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        reader = self._reader
        arrays = tuple([read[i] for read in reads] for i in self._order)
        connections = pg_direct.held(reader._engine)
        held = None if connections is None else await connections.acquire()
        if connections is not None and held is not None:
            async with connections.using(held) as driver:
                found = await driver.fetch(self._sql, *arrays)
        else:
            async with reader._engine.connect() as conn:
                raw: Any = (await conn.get_raw_connection()).driver_connection
                found = await raw.fetch(self._sql, *arrays)
        keys = self._keys
        return {tuple(row[i] for i in keys): reader._convert(row) for row in found}
