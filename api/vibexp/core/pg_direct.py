"""PostgreSQL's hot-path statements on a few connections held beside the pool, without a checkout per request.

The PostgreSQL counterpart of ``vibexp.core.sqlite_direct``. ``RowReader`` and ``RowInserter`` run one asyncpg call
per request; checking a connection out of SQLAlchemy's pool for it (``Engine.connect``, the ``_ConnectionFairy``,
the reset on return, each a hop through a greenlet) cost ~60-90 µs of server CPU per request, more than the
statement itself (docs/performance.md). ``held(engine)`` gives the running event loop a small free list of
connections instead: ``acquire`` takes one (opening one while fewer than the cap are held), ``release`` gives it
back.
When all are in use, ``acquire`` returns ``None`` and the caller checks one out of the pool as before.

* The connections are checked out of the engine's own pool once and kept, so they are set up exactly as every
  other (the dialect's JSON codecs, ``ssl``, the server settings) and count against the pool's size: a process never
  opens more connections than ``VIBEXP_DATABASE_POOL_SIZE`` + ``VIBEXP_DATABASE_MAX_OVERFLOW``. The cap is
  ``VIBEXP_DATABASE_HOT_CONNECTIONS`` (``configure``; default 16, 0 turns them off), never more than the pool's
  size less one. Under load a process has about as many hot inserts in flight as requests: with 4 held, a
  16-connection load sent most of them to the pool (PG GET ~490 µs CPU against ~400 with 16, before the reads took
  turns: ``vibexp.core.hotread``).
* The statements run in autocommit (no BEGIN), each prepared once per connection by asyncpg's statement cache.
* A connection is given back only after a statement that finished. One that was lost (``connection_lost``) or whose
  statement was interrupted (a cancelled request: asyncpg would refuse its next statement, "another operation is in
  progress") is terminated and never handed out again.
* Disposing of the engine (with ``close=False`` after a lost connection) terminates every free held connection and
  retires the busy ones when they come back, as the pool's own are replaced. At shutdown ``Database.dispose`` gives
  them back to the pool first (``give_back``), which closes them with its own.
  Connections older than the engine's ``pool_recycle`` are given back to the pool, which retires them.
* One free list per engine and event loop (asyncpg connections belong to the loop that opened them): a loop that
  finds another, still running loop's list uses the pool.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any
from weakref import WeakKeyDictionary, ref

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from vibexp.core.config import Settings

__all__ = ["Held", "HeldConnections", "Using", "configure", "connection_lost", "give_back", "held"]

#: SQLSTATE classes of a connection that is gone or refused (08: connection exception, 57P: operator intervention
#: such as a server shutting down), and the Python errors a dropped socket raises.
_LOST_SQLSTATES = ("08", "57P")


def connection_lost(exc: BaseException) -> bool:
    """Whether a driver error means the connection is gone (the database restarted, failed over or went away)."""
    if isinstance(exc, (OSError, ConnectionError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_LOST_SQLSTATES):
        return True
    # asyncpg.InterfaceError ("connection is closed"), without importing asyncpg for SQLite-only installs; its
    # InternalClientError ("cannot switch to state …; another operation is in progress") is a connection whose
    # protocol was cut mid-operation by the server's termination: unusable, so it counts as lost too.
    return type(exc).__name__ in {"InterfaceError", "ConnectionDoesNotExistError", "InternalClientError"}


class Held:
    """One held connection: the pool's proxy (checked out for good) and the asyncpg connection in it."""

    __slots__ = ("born", "driver", "epoch", "fairy")

    def __init__(self, fairy: PoolProxiedConnection, epoch: int) -> None:
        self.fairy = fairy
        self.driver: Any = fairy.driver_connection
        self.born = time.monotonic()
        self.epoch = epoch


class HeldConnections:
    """One engine's held connections on one event loop."""

    def __init__(self, engine: AsyncEngine, loop: asyncio.AbstractEventLoop, cap: int) -> None:
        self.engine = engine
        self.loop = loop
        self.cap = cap
        self._free: deque[Held] = deque()
        self.count = 0  #: held connections, free or in use
        self._epoch = 0  #: bumped by every dispose: a connection of an older epoch is not given back
        recycle = getattr(engine.pool, "_recycle", -1)
        self._recycle = float(recycle) if recycle and recycle > 0 else float("inf")

    @property
    def free(self) -> int:
        return len(self._free)

    async def acquire(self) -> Held | None:
        """A free held connection, a newly held one while fewer than the cap are held, or ``None`` (use the pool)."""
        free = self._free
        while free:
            held = free.popleft()  # oldest first, as the pool does: none of them idles while the others work
            if time.monotonic() - held.born < self._recycle:
                return held
            self.count -= 1
            await greenlet_spawn(held.fairy.close)  # back to the pool, which retires it past pool_recycle
        if self.count >= self.cap:
            return None
        self.count += 1
        try:
            fairy = await self.engine.raw_connection()
        except BaseException:
            self.count -= 1
            raise
        return Held(fairy, self._epoch)

    def using(self, held: Held) -> Using:
        """``async with connections.using(held) as driver``: one statement on ``held``'s asyncpg connection. Given
        back after a statement that finished (a database error included); terminated when the connection was lost
        (the engine disposed of too: the pool's and the other held ones went with the server) or the statement was
        interrupted (cancelled). The statement's own error leaves as it came: the caller maps it (a read may be
        repeated on a lost connection, an insert never)."""
        return Using(self, held)

    def release(self, held: Held) -> None:
        """Give back a connection whose statement finished (successfully or with a database error)."""
        if held.epoch == self._epoch:
            self._free.append(held)
        else:  # the engine was disposed of while it was in use
            self.discard(held)

    def discard(self, held: Held) -> None:
        """Terminate a connection that was lost or interrupted mid-statement; it is never handed out again."""
        if held.epoch == self._epoch:
            self.count -= 1
        held.driver.terminate()  # abort the socket now: no await (this may run in a cancelled task)
        held.fairy.invalidate()  # the pool forgets it (its slot is free again)

    def drop_all(self) -> None:
        """Terminate every free connection and retire the busy ones when they come back (the engine was disposed
        of: at shutdown they were given back first, see ``give_back``; otherwise a connection was lost, and the
        others most likely went with the server, so none is waited for)."""
        self._epoch += 1
        self.count = 0
        free, self._free = list(self._free), deque()
        for held in free:
            held.driver.terminate()
            held.fairy.invalidate()

    async def give_back(self) -> None:
        """Return every free connection to the pool (before it is disposed of at shutdown, which closes them
        politely); busy ones are discarded when they come back."""
        self._epoch += 1
        self.count = 0
        free, self._free = list(self._free), deque()
        for held in free:
            await greenlet_spawn(held.fairy.close)


class Using:
    """``HeldConnections.using``: a plain class, not a generator-based context manager (it is on every hot request)."""

    __slots__ = ("_connections", "_held")

    def __init__(self, connections: HeldConnections, held: Held) -> None:
        self._connections = connections
        self._held = held

    async def __aenter__(self) -> Any:
        return self._held.driver

    async def __aexit__(self, _type: object, exc: BaseException | None, _traceback: object) -> None:
        connections, held = self._connections, self._held
        if exc is None or (isinstance(exc, Exception) and not connection_lost(exc)):
            connections.release(held)
        elif isinstance(exc, Exception):  # lost: never used again, and the pool is rebuilt
            connections.discard(held)
            await connections.engine.dispose(close=False)
        else:  # interrupted mid-statement (cancelled): asyncpg would refuse its next one
            connections.discard(held)


_held: WeakKeyDictionary[AsyncEngine, HeldConnections] = WeakKeyDictionary()
_caps: WeakKeyDictionary[AsyncEngine, int] = WeakKeyDictionary()
_DEFAULT_CAP: int = Settings.model_fields["database_hot_connections"].default


async def give_back(engine: AsyncEngine) -> None:
    """Before ``engine.dispose()`` at shutdown: the held connections go back to the pool, to be closed with it."""
    connections = _held.get(engine)
    if connections is not None and connections.loop is _running_loop():
        await connections.give_back()


def configure(engine: AsyncEngine, cap: int) -> None:
    """Hold at most ``cap`` connections of ``engine`` for the hot statements (0: none; default: the setting's)."""
    _caps[engine] = cap


def held(engine: AsyncEngine) -> HeldConnections | None:
    """The running loop's held connections of a PostgreSQL ``engine``, or ``None`` (another loop holds them)."""
    loop = asyncio.get_running_loop()
    connections = _held.get(engine)
    if connections is not None and connections.loop is loop:
        return connections
    if connections is not None and not connections.loop.is_closed():
        return None
    if connections is None:
        _on_dispose(engine)
    pool_size = engine.pool.size() if hasattr(engine.pool, "size") else 1
    cap = max(0, min(_caps.get(engine, _DEFAULT_CAP), pool_size - 1))
    connections = _held[engine] = HeldConnections(engine, loop, cap)
    return connections


def _on_dispose(engine: AsyncEngine) -> None:
    weak = ref(engine)

    def disposed(_engine: object) -> None:
        owner = weak()
        connections = None if owner is None else _held.get(owner)
        if connections is None or owner is None:
            return
        if connections.loop is _running_loop():
            connections.drop_all()
        else:  # disposed from another loop (or none): its connections cannot be closed from here
            _held.pop(owner, None)

    event.listen(engine.sync_engine, "engine_disposed", disposed)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
