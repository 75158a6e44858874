"""SQLite's hot-path statements on a plain ``sqlite3`` connection in the calling thread, without aiosqlite's hop.

aiosqlite runs every call on the connection's own thread: the event loop queues it, the thread wakes, runs it and
wakes the loop again through its self-pipe. For a primary-key read (tens of µs in SQLite itself) that round trip
was most of the request: py-spy on an authenticated ``GET /api/v1/prompts/{id}`` put ~45% of the server's samples
in aiosqlite's queue, its worker thread and the wake-ups (docs/performance.md). ``direct(engine)`` gives the event
loop's thread a connection of its own to the same file, opened once, so ``RowReader`` and ``RowInserter`` call
SQLite where they stand.

The connection never makes the event loop wait for another connection's lock:

* autocommit (``isolation_level=None``): each statement is its own transaction and sees everything committed
  before it (WAL readers never wait for writers), so a read is as fresh as through the pool;
* ``busy_timeout=0``: when another connection holds the write lock (this process's usage flusher, another worker,
  the CLI), an insert fails at once with SQLITE_BUSY, having written nothing; ``busy(exc)`` says so, and the
  caller runs the statement through the pool instead, where waiting costs no one else (the same for a read that
  meets a lock, e.g. during WAL recovery);
* ``wal_autocheckpoint=0``: it never checkpoints (which writes and syncs the database file); the server's
  ``vibexp.core.wal.WalCheckpointer`` does, in the pool's thread (elsewhere the pooled connections do, when they
  commit).

Only for a file database (an in-memory one is private to each connection: ``direct`` returns ``None``, and the
caller uses the pool). Connections are per thread (``sqlite3`` refuses use from another) and closed when the engine
is disposed.
"""

from __future__ import annotations

import sqlite3
import threading
from weakref import WeakKeyDictionary, ref

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["busy", "direct", "file_database"]

_PRAGMAS = (
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=0",
    "PRAGMA wal_autocheckpoint=0",
)


class _Connections:
    """One engine's direct connections, one per thread that asked."""

    def __init__(self, engine: AsyncEngine) -> None:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._database: str = args[0]
        self._uri = bool(kwargs.get("uri", False))
        self._by_thread: dict[int, sqlite3.Connection] = {}
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        thread = threading.get_ident()
        conn = self._by_thread.get(thread)
        if conn is None:
            conn = sqlite3.connect(self._database, isolation_level=None, check_same_thread=True, uri=self._uri)
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            with self._lock:
                self._by_thread[thread] = conn
        return conn

    def close(self) -> None:
        with self._lock:
            connections, self._by_thread = list(self._by_thread.items()), {}
        for thread, conn in connections:
            if thread == threading.get_ident():
                conn.close()
            # Another thread's connection cannot be closed from here (sqlite3 checks the thread); dropping it
            # closes it when it is collected.


_engines: WeakKeyDictionary[AsyncEngine, _Connections | None] = WeakKeyDictionary()


def direct(engine: AsyncEngine) -> sqlite3.Connection | None:
    """This thread's plain connection to ``engine``'s SQLite file, or ``None`` (not SQLite, or in memory)."""
    try:
        connections = _engines[engine]
    except KeyError:
        connections = _engines[engine] = _open(engine)
    return None if connections is None else connections.get()


def file_database(engine: AsyncEngine) -> bool:
    """Whether ``engine`` is a SQLite database in a file (not PostgreSQL, not in memory)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return False
    return "mode=memory" not in str(engine.url)


def _open(engine: AsyncEngine) -> _Connections | None:
    if not file_database(engine):
        return None
    connections = _Connections(engine)
    weak = ref(engine)

    def disposed(_engine: object) -> None:
        connections.close()
        owner = weak()
        if owner is not None:
            _engines.pop(owner, None)

    event.listen(engine.sync_engine, "engine_disposed", disposed)
    return connections


def busy(exc: BaseException) -> bool:
    """Whether a ``sqlite3`` error is another connection's lock (SQLITE_BUSY or SQLITE_LOCKED): nothing was done,
    and the statement may be run again through the pool."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in (5, 6)
