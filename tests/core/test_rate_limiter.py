"""The rate limiter's leases (``vibexp.core.ratelimit.limiter``): exact under concurrency on both databases; on
SQLite a lease is taken on the event loop thread's own connection (no pooled connection, no transaction held across
round trips to the pool's thread), and one that meets another process's write lock waits for it through the pool
instead of failing or counting twice."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers.databases import sqlite_url
from vibexp.core.db import create_engine
from vibexp.core.migrate import upgrade_async
from vibexp.core.ratelimit.limiter import RateLimiter
from vibexp.core.ratelimit.models import RateWindow

#: Inside one hour window (10:00:00 UTC on a fixed day), so a test never straddles two windows.
NOW = 1_767_261_600.0 + 10 * 3600


async def _used(engine: AsyncEngine, subject: str) -> int:
    async with engine.connect() as conn:
        used = await conn.scalar(select(RateWindow.used).where(RateWindow.tenant_id == subject))
    return int(used or 0)


async def test_concurrent_hits_admit_exactly_the_limit(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        limiter = RateLimiter(engine)
        subject = str(uuid.uuid4())
        decisions = await asyncio.gather(*(limiter.hit(tenant_id=subject, limit=250, now=NOW) for _ in range(300)))
        assert sum(d.allowed for d in decisions) == 250
        assert [d.remaining for d in decisions if d.allowed][-1] == 0
        refused = [d for d in decisions if not d.allowed]
        assert len(refused) == 50 and all(d.retry_after >= 1 for d in refused)
        assert await _used(engine, subject) == 250  # every lease drained: nothing counted that was not admitted
        again = RateLimiter(engine)  # another process: the window is full for it too
        assert not (await again.hit(tenant_id=subject, limit=250, now=NOW)).allowed
    finally:
        await engine.dispose()


async def test_sqlite_leases_take_no_pooled_connection(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await upgrade_async(url)
    engine = create_engine(url)
    checkouts: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args))
    try:
        limiter = RateLimiter(engine)
        subject = str(uuid.uuid4())
        for _ in range(120):  # the first lease creates the window's row; several more are taken on the way
            assert (await limiter.hit(tenant_id=subject, limit=130, now=NOW)).allowed
        assert checkouts == []
        checkouts_before = len(checkouts)
        assert await _used(engine, subject) >= 120
        assert len(checkouts) == checkouts_before + 1  # the check above is the only pooled connection
    finally:
        await engine.dispose()


async def test_sqlite_lease_waits_for_another_process_write_lock(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await upgrade_async(url)
    engine = create_engine(url)
    other = sqlite3.connect(tmp_path / "vibexp.db", isolation_level=None)  # another process's connection
    try:
        limiter = RateLimiter(engine)
        subject = str(uuid.uuid4())
        other.execute("BEGIN IMMEDIATE")  # holds the file's write lock
        started = time.monotonic()
        hit = asyncio.create_task(limiter.hit(tenant_id=subject, limit=10, now=NOW))
        await asyncio.sleep(0.3)
        assert not hit.done()  # waiting (through the pool's busy timeout), not refused and not failed
        other.execute("COMMIT")
        decision = await asyncio.wait_for(hit, timeout=5)
        assert decision.allowed and time.monotonic() - started >= 0.3
        assert await _used(engine, subject) == 1  # a limit of 10: leases of one; counted once
        for _ in range(9):
            assert (await limiter.hit(tenant_id=subject, limit=10, now=NOW)).allowed
        assert not (await limiter.hit(tenant_id=subject, limit=10, now=NOW)).allowed
        assert await _used(engine, subject) == 10
    finally:
        other.close()
        await engine.dispose()
