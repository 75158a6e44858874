"""SQLite's WAL checkpoints off the write path (``vibexp.core.wal``): the server's pooled connections never
checkpoint when they commit, the checkpointer copies the log back and lets it start again, and under a steady stream
of writes (which a passive checkpoint never catches up with) it still keeps the log from growing without end."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers.databases import sqlite_url
from vibexp.core.config import Settings
from vibexp.core.db import create_engine, writing
from vibexp.core.runtime import Runtime
from vibexp.core.sqlite_direct import direct
from vibexp.core.wal import WalCheckpointer

#: ~3 pages of the log per row.
ROW = "x" * 10_000


async def _autocheckpoint(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one())


async def _setup(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x TEXT)")


def _log_frames(path: Path) -> int:
    """The log's frames now, as the WAL index (``-shm``) says: ``mxFrame``, a native 32-bit integer at byte 16 of
    its header. Read from the file, so looking changes nothing (a checkpoint to ask would copy the log back)."""
    with open(f"{path}-shm", "rb") as shm:
        header = shm.read(48)
    return int(struct.unpack_from("=I", header, 16)[0])


async def test_only_the_servers_engine_leaves_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    background = create_engine(sqlite_url(tmp_path), background_checkpoints=True)
    default = create_engine(sqlite_url(tmp_path))  # the CLI's, the operator's
    try:
        assert await _autocheckpoint(background) == 0
        assert await _autocheckpoint(default) == 1000  # SQLite's own automatic checkpoints
    finally:
        await background.dispose()
        await default.dispose()


async def test_the_runtime_runs_the_checkpointer_on_sqlite_only(tmp_path: Path, postgres_url: str) -> None:
    runtime = Runtime.create(Settings(database_url=sqlite_url(tmp_path)))
    try:
        assert runtime.checkpoints in runtime.tasks.members and runtime.checkpoints.applies
        assert await _autocheckpoint(runtime.engine) == 0
    finally:
        await runtime.database.dispose()
    for url in (postgres_url, "sqlite+aiosqlite:///:memory:"):
        engine = create_engine(url)
        try:
            checkpointer = WalCheckpointer(engine)
            assert not checkpointer.applies
            await checkpointer.start()  # nothing to do: no task
            await checkpointer.stop()
        finally:
            await engine.dispose()


async def test_a_checkpoint_copies_the_log_back_and_the_next_writer_starts_it_again(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path), background_checkpoints=True)
    try:
        await _setup(engine)
        async with engine.begin() as conn:
            for _ in range(200):
                await conn.exec_driver_sql("INSERT INTO t VALUES (?)", (ROW,))
        frames = _log_frames(tmp_path / "vibexp.db")
        assert frames > 500  # the commit did not checkpoint
        row = await WalCheckpointer(engine).checkpoint()
        assert row is not None and row[0] == 0 and row[2] == row[1] >= frames
        async with engine.begin() as conn:
            await conn.exec_driver_sql("INSERT INTO t VALUES ('small')")
        assert _log_frames(tmp_path / "vibexp.db") < 10  # restarted from the beginning
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar_one() == 201
    finally:
        await engine.dispose()


async def test_a_steady_stream_of_writes_does_not_grow_the_log_without_end(tmp_path: Path) -> None:
    """Writes on the event loop's own connection (as stored memories are) never pause for a passive checkpoint to
    catch up; the checkpointer finishes under the writer turn and the log starts again."""
    engine = create_engine(sqlite_url(tmp_path), background_checkpoints=True)
    checkpointer = WalCheckpointer(engine, interval=0.05)
    path = tmp_path / "vibexp.db"
    try:
        await _setup(engine)
        conn = direct(engine)
        assert conn is not None
        await checkpointer.start()
        written, longest, restarts, previous = 0, 0, 0, 0
        started = time.monotonic()
        # At least 2 s and 5,000 rows (~3.5 pages each): many checkpoint intervals, however busy the machine is;
        # bounded by 30 s and 20,000 rows (~200 MB).
        while written < 20_000 and (elapsed := time.monotonic() - started) < 30:
            if elapsed >= 2 and written >= 5_000:
                break
            async with writing(engine):  # as a stored memory is (vibexp.core.hotwrite)
                conn.execute("INSERT INTO t VALUES (?)", (ROW,))
            written += 1
            if written % 20 == 0:
                await asyncio.sleep(0.001)  # the loop runs other requests between them
                frames = _log_frames(path)
                longest, restarts, previous = max(longest, frames), restarts + (frames < previous), frames
        await checkpointer.stop()
        assert written >= 5_000
        assert restarts >= 3
        assert longest < written  # under a third of the pages that went through; the control below keeps all
    finally:
        await checkpointer.stop()
        await engine.dispose()


async def test_without_the_checkpointer_the_same_stream_grows_the_log(tmp_path: Path) -> None:
    """The control for the test above: such writes, nobody checkpointing, leave every page in the log."""
    engine = create_engine(sqlite_url(tmp_path), background_checkpoints=True)
    try:
        await _setup(engine)
        conn = direct(engine)
        assert conn is not None
        for _ in range(2_000):
            conn.execute("INSERT INTO t VALUES (?)", (ROW,))
        assert _log_frames(tmp_path / "vibexp.db") > 5_000
    finally:
        await engine.dispose()


async def test_pooled_commits_past_sqlites_threshold_leave_the_log_to_the_checkpointer(tmp_path: Path) -> None:
    """A pooled commit after the log passed SQLite's threshold (1,000 pages) does not copy it back (the writer turn
    is not spent on a checkpoint): the log keeps every frame until the checkpointer runs. With SQLite's default,
    the same commits restart it."""
    engine = create_engine(sqlite_url(tmp_path), background_checkpoints=True)
    commits: list[object] = []
    event.listen(engine.sync_engine, "commit", lambda *args: commits.append(args))
    try:
        await _setup(engine)
        for _ in range(5):
            async with engine.begin() as conn:
                for _ in range(150):
                    await conn.exec_driver_sql("INSERT INTO t VALUES (?)", (ROW,))
        assert len(commits) == 6
        assert _log_frames(tmp_path / "vibexp.db") > 1_500
    finally:
        await engine.dispose()
    default = create_engine(sqlite_url(tmp_path, "default.db"))
    try:
        await _setup(default)
        for _ in range(5):
            async with default.begin() as conn:
                for _ in range(150):
                    await conn.exec_driver_sql("INSERT INTO t VALUES (?)", (ROW,))
        assert _log_frames(tmp_path / "default.db") < 1_000
    finally:
        await default.dispose()
