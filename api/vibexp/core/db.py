"""Database plumbing: declarative base, engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Every process (the API, the operator, the CLI) opens its database the same way, ``Database.from_settings``: the
pool settings (``VIBEXP_DATABASE_POOL_SIZE``, ``VIBEXP_DATABASE_MAX_OVERFLOW``) apply everywhere.

Services receive an ``AsyncSession`` and only ``flush``; the caller that opened the session (an HTTP request, a
CLI command, an operator handler) is the one place that commits or rolls back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import PoolResetState
from sqlalchemy.types import TypeDecorator

from vibexp.core import pg_direct
from vibexp.core.config import Settings

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "Base",
    "Database",
    "UTCDateTime",
    "create_engine",
    "create_session_factory",
    "engine_options",
    "session_scope",
    "writing",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite has no time zones: stored naive, read back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: How long a pooled SQLite connection waits for another connection's lock (ms).
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, *, background_checkpoints: bool) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the usage flusher; busy_timeout makes concurrent writers wait, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    if background_checkpoints:  # vibexp.core.wal checkpoints off the write path; a commit never does
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


#: Hosts on which a PostgreSQL connection never leaves the machine: TLS there costs a handshake and per-packet
#: crypto (asyncpg's default ``sslmode=prefer`` negotiates it even on loopback) and protects nothing.
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _is_loopback(host: str | None) -> bool:
    return host is None or host in _LOOPBACK_HOSTS or host.startswith(("127.", "/"))


def engine_options(database_url: str, **kwargs: Any) -> dict[str, Any]:
    """The ``create_async_engine`` options for a URL; ``pool_size``/``max_overflow`` apply to both backends.

    * Both backends keep ``pool_size`` connections open (SQLAlchemy's SQLite default, 5 + 10 overflow, closed and
      reopened a connection — a thread, a file open and four PRAGMAs — for about every 8th request under load).
    * SQLite: no rollback when a connection returns to the pool unless it is inside a transaction (aiosqlite makes
      each rollback a round trip to the connection's thread; a read never opened one). See ``_sqlite_reset``.
    * PostgreSQL: no pre-ping (BEGIN; ``;``; ROLLBACK on every checkout). A connection the server dropped fails
      its next statement, and SQLAlchemy then invalidates the whole pool, so a restarted database is reconnected
      to by the next request (the hot reads in ``vibexp.core.hotread`` do the same for their own errors).
      ``pool_recycle`` retires connections after half an hour so idle ones do not outlive NAT/proxy timeouts.
    * PostgreSQL on loopback: ``ssl=False`` unless the URL or ``PGSSLMODE`` asks for TLS explicitly.
    """
    # The pool's numbers are the settings' defaults, written once there (Database.from_settings passes the
    # configured ones).
    options: dict[str, Any] = {
        "pool_size": Settings.model_fields["database_pool_size"].default,
        "max_overflow": Settings.model_fields["database_max_overflow"].default,
        **kwargs,
    }
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):  # one in-memory database per connection: SQLAlchemy's own pool
            options.pop("pool_size", None)
            options.pop("max_overflow", None)
        else:
            options.setdefault("pool_reset_on_return", None)
        return options
    options.setdefault("pool_pre_ping", False)
    options.setdefault("pool_recycle", 1800)
    explicit_tls = {"ssl", "sslmode"} & set(url.query) or os.environ.get("PGSSLMODE")
    if url.get_driver_name() == "asyncpg" and not explicit_tls and _is_loopback(url.host):
        options["connect_args"] = {"ssl": False, **options.get("connect_args", {})}
    return options


def _sqlite_reset(dbapi_connection: Any, _record: Any, reset_state: PoolResetState) -> None:
    """Pool reset for SQLite (``pool_reset_on_return=None`` hands it to this hook): roll back only an open
    transaction. Python's sqlite3 opens one only for a write, so a returning reader skips the round trip."""
    if not reset_state.asyncio_safe:  # garbage-collected connection: nothing may be awaited, the pool discards it
        return
    if reset_state.transaction_was_reset:
        return
    if dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


def create_engine(database_url: str, *, background_checkpoints: bool = False, **kwargs: Any) -> AsyncEngine:
    """An engine with ``engine_options``. ``background_checkpoints`` (SQLite): the pooled connections never
    checkpoint the WAL when they commit, because this process runs ``vibexp.core.wal.WalCheckpointer``; without
    it (the CLI, the operator) SQLite's automatic checkpoints stay on."""
    options = engine_options(database_url, **kwargs)
    engine = create_async_engine(database_url, **options)
    if engine.dialect.name == "sqlite":

        def pragmas(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, background_checkpoints=background_checkpoints)

        event.listen(engine.sync_engine, "connect", pragmas)
        if "pool_reset_on_return" in options and options["pool_reset_on_return"] is None:
            event.listen(engine.sync_engine.pool, "reset", _sqlite_reset)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@dataclass(frozen=True, slots=True)
class Database:
    """One process's engine (its connection pool) and the session factory on it."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]

    @classmethod
    def from_settings(
        cls, settings: Settings, *, pre_ping: bool = False, background_checkpoints: bool = False
    ) -> Database:
        """The configured database with the configured pool.

        ``pre_ping`` checks each PostgreSQL connection on checkout (a round trip). The API leaves it off for its hot
        path: after a database restart one request per process meets a dead connection (answered 503) and the pool
        is rebuilt. Background processes with no such budget (the operator) turn it on, so a restart costs them
        nothing. ``background_checkpoints``: see ``create_engine`` (the server's runtime, which runs the
        checkpointer). Connects lazily: building it opens no connection.
        """
        options: dict[str, Any] = {"pool_pre_ping": True} if pre_ping and not settings.is_sqlite else {}
        engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            background_checkpoints=background_checkpoints and settings.is_sqlite,
            **options,
        )
        if not settings.is_sqlite:
            pg_direct.configure(engine, settings.database_hot_connections)
        return cls(engine=engine, session_factory=create_session_factory(engine))

    async def dispose(self) -> None:
        """Close every pooled connection, and those held for the hot statements (at shutdown)."""
        if self.engine.dialect.name != "sqlite":
            await pg_direct.give_back(self.engine)
        await self.engine.dispose()


@asynccontextmanager
async def session_scope(
    factory: async_sessionmaker[AsyncSession], *, write: bool = False
) -> AsyncIterator[AsyncSession]:
    """The unit of work, the one way every adapter opens a transaction (a REST request, an MCP tool, a dashboard
    page, a CLI command, an operator handler): a session, committed on success and rolled back on any error.

    ``write=True`` takes this process's SQLite writer turn first (``writing``; nothing on PostgreSQL), so writers
    queue instead of polling SQLite's busy handler. Never nest a write unit inside another on the same engine: the
    turn is not re-entrant. Services only flush; the after-commit notices (``vibexp.core.keys.changes``,
    ``vibexp.core.alerts.service``) fire when this commits.
    """
    turn = writing(factory.kw["bind"]) if write else nullcontext()
    async with turn, factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


#: One lock per SQLite engine: see ``writing``.
_write_locks: WeakKeyDictionary[AsyncEngine, asyncio.Lock] = WeakKeyDictionary()


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[None]:
    """Around a write transaction: on SQLite, this process's writers take turns; on PostgreSQL, nothing.

    SQLite has one write lock per file. Writers on different pooled connections that meet it wait in SQLite's busy
    handler, which polls by sleeping (1, 2, 5 ... 100 ms): under a burst of POSTs most of their time went to those
    sleeps (p99 ~2 s). Queued on an ``asyncio.Lock`` instead, each writer starts the moment the previous one
    committed. Other processes on the same file (``--workers``, the CLI) still meet ``busy_timeout``.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    lock = _write_locks.get(engine)
    if lock is None:
        lock = _write_locks[engine] = asyncio.Lock()
    async with lock:
        yield
