"""SQLite's WAL checkpoints, run in the background instead of inside a writer's commit.

In WAL mode every commit appends the pages it changed to the ``-wal`` file, and a *checkpoint* copies them back
into the database file and syncs it. By default the connection whose commit takes the log past 1,000 pages runs
that checkpoint before its commit returns. Under a stream of writes (a stored memory appends ~14 pages: the row,
four indexes and the FTS5 index) that was almost every commit of the pooled connections: the rate limiter's lease,
the usage flush, the alert detection, each holding this process's writer turn (``vibexp.core.db.writing``) through
a copy and an ``fsync`` while the requests that wanted to write waited. Measured on a POST-only load: a lease held
the turn 6.9 ms (p50), against 2.3 ms without the checkpoint (docs/performance.md).

So the server's engine is opened with ``background_checkpoints`` (``vibexp.core.db.create_engine``: its pooled
connections have ``wal_autocheckpoint=0``, as the event loop's own connection in ``vibexp.core.sqlite_direct``
always had), and ``WalCheckpointer`` checkpoints every ``interval`` seconds on a pooled connection, in its thread:

1. ``PRAGMA wal_checkpoint(PASSIVE)`` without the writer turn. It takes no write lock: writers keep appending while
   it copies and syncs, readers keep reading. Under light load it copies the whole log, and the next writer starts
   the log again from the beginning.
2. Under a steady stream of writes it never catches up (what was appended while it copied is left, and its row
   cannot say so), so the log would grow without end. When the log is longer than ``RESTART_FRAMES``, it takes this
   process's writer turn and runs ``wal_checkpoint(RESTART)``, which holds SQLite's write lock (other processes'
   writers wait too) while it copies what the first pass left — a fraction of a second's writes — and waits at most
   ``RESTART_WAIT_MS`` for readers to leave the log; the next writer then starts it from the beginning. Measured
   on a POST-only load: the turn held ~9 ms four times a second, against a checkpoint in nearly every pooled
   commit before: a lease held it 8 ms (p50) then, 0.08 ms now (docs/performance.md).

Several processes on one file (``--workers``) each run one; a checkpoint that meets another process's skips that
turn. Processes without a checkpointer (the CLI, the operator) keep SQLite's automatic checkpoints, and closing the
last connection to the file checkpoints what is left either way.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from vibexp.core.db import SQLITE_BUSY_TIMEOUT_MS, writing
from vibexp.core.sqlite_direct import busy, file_database
from vibexp.core.tasks import PeriodicTask

__all__ = ["DEFAULT_INTERVAL", "RESTART_FRAMES", "Checkpoint", "WalCheckpointer"]

log = logging.getLogger(__name__)

#: Seconds between checkpoints: at ~1,500 stored memories a second the log grows by ~80 MB a second, so it is
#: copied back a few times a second (a checkpoint with nothing to copy costs a pragma in the pool's thread).
DEFAULT_INTERVAL = 0.25

#: The log's length (frames, i.e. pages) above which a passive checkpoint is followed by a restarting one under the
#: writer turn: SQLite's own automatic checkpoint threshold, ~4 MB.
RESTART_FRAMES = 1000
#: How long the restarting checkpoint waits for readers (and other processes' writers) before giving up that turn.
RESTART_WAIT_MS = 100

#: ``PRAGMA wal_checkpoint``'s row: whether it was blocked, the log's frames, the frames copied back.
Checkpoint = tuple[int, int, int]


class WalCheckpointer:
    """Checkpoints a SQLite file database's WAL every ``interval`` seconds; does nothing on PostgreSQL or for an
    in-memory database."""

    def __init__(self, engine: AsyncEngine, *, interval: float = DEFAULT_INTERVAL) -> None:
        self._engine = engine
        self.applies = file_database(engine)
        self._task = PeriodicTask(
            "vibexp-wal-checkpoint",
            self.checkpoint,
            interval=interval,
            logger=log,
            what="SQLite WAL checkpoint",
            consequence="the -wal file grows until one succeeds",
        )
        #: The latest checkpoint's row (``None`` before the first, or when it met another process's).
        self.last: Checkpoint | None = None

    async def start(self) -> None:
        if self.applies:
            await self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def checkpoint(self) -> Checkpoint | None:
        """A passive checkpoint, and a restarting one under the writer turn when the log is longer than
        ``RESTART_FRAMES``; the last one's row, or ``None`` when it met another connection's checkpoint (nothing
        was done)."""
        row = await self._run("PASSIVE")
        if row is not None and row[1] > RESTART_FRAMES:
            async with writing(self._engine):
                row = await self._run("RESTART", wait_ms=RESTART_WAIT_MS)
        self.last = row
        return row

    async def _run(self, mode: str, *, wait_ms: int | None = None) -> Checkpoint | None:
        # On the driver's connection: a pragma opens no transaction for SQLAlchemy to keep or roll back.
        async with self._engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            if wait_ms is not None:
                await driver.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
            try:
                rows = await driver.execute_fetchall(f"PRAGMA wal_checkpoint({mode})")
            except sqlite3.Error as exc:
                if busy(exc):
                    return None
                raise OperationalError(f"PRAGMA wal_checkpoint({mode})", None, exc) from exc
            finally:
                if wait_ms is not None:
                    await driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        blocked, frames, copied = (int(value) for value in rows[0])
        return blocked, frames, copied
