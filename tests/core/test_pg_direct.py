"""The connections held beside the pool for PostgreSQL's hot statements (``vibexp.core.pg_direct``, issue #27): the
hot read and insert run on them without a pool checkout, more concurrent ones than the cap use the pool, a lost or
interrupted connection is never handed out again, disposing of the engine closes them, and SQLite never holds any."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Float, bindparam, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers.databases import server_sessions, sqlite_url, terminate_connections
from helpers.factories import make_account
from vibexp.core import pg_direct
from vibexp.core.config import Settings
from vibexp.core.content.schemas import MemoryCreate, PromptCreate
from vibexp.core.content.service import memories, prompts
from vibexp.core.db import Database, create_engine, create_session_factory, session_scope
from vibexp.core.hotread import RowReader
from vibexp.core.migrate import upgrade_async


async def _prompt(engine: AsyncEngine) -> tuple[str, str]:
    """A tenant and one prompt of it: (tenant id, prompt id)."""
    factory = create_session_factory(engine)
    account = await make_account(factory)
    async with session_scope(factory) as session:
        created = await prompts.create(session, tenant_id=account.tenant.id, data=PromptCreate(name="hot", content="x"))
    return account.tenant.id, created.id


async def _inserts(engine: AsyncEngine, tenant: str, count: int) -> None:
    """``count`` memories inserted at once: as many hot statements in flight (reads would take turns)."""
    memory = MemoryCreate(content="at once")
    await asyncio.gather(*(memories.insert(engine, tenant_id=tenant, data=memory) for _ in range(count)))


def _checkouts(engine: AsyncEngine) -> list[int]:
    """How many times a connection is checked out of the engine's pool (of every pool it gets, after a dispose)."""
    count = [0]

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(*_: Any) -> None:
        count[0] += 1

    return count


def _held(engine: AsyncEngine) -> pg_direct.HeldConnections:
    connections = pg_direct.held(engine)
    assert connections is not None
    return connections


async def _until(condition: Any, *, limit: float = 5.0) -> None:
    """Wait (bounded) for an async condition the server reaches on its own time, e.g. a terminated backend's exit."""
    deadline = time.monotonic() + limit
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_hot_reads_and_inserts_run_on_a_held_connection_without_a_pool_checkout(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=5)
    try:
        tenant, prompt_id = await _prompt(engine)
        assert (await prompts.read(engine, tenant_id=tenant, id=prompt_id))["name"] == "hot"  # holds one
        checkouts = _checkouts(engine)
        for i in range(20):
            row = await prompts.read(engine, tenant_id=tenant, id=prompt_id)
            assert (row["name"], row["content"], row["created_at"].tzinfo is not None) == ("hot", "x", True)
            stored = await memories.insert(engine, tenant_id=tenant, data=MemoryCreate(content=f"m{i}", tags=["é"]))
            assert (await memories.read(engine, tenant_id=tenant, id=stored["id"]))["tags"] == ["é"]
        assert checkouts[0] == 0
        connections = _held(engine)
        assert (connections.count, connections.free) == (1, 1)  # one at a time: one held connection served all
    finally:
        await engine.dispose()


async def test_more_concurrent_statements_than_the_cap_use_the_pool(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=5, max_overflow=0)
    pg_direct.configure(engine, 2)
    try:
        tenant, prompt_id = await _prompt(engine)
        checkouts = _checkouts(engine)
        memory = MemoryCreate(content="burst")
        stored = await asyncio.gather(*(memories.insert(engine, tenant_id=tenant, data=memory) for _ in range(12)))
        assert len({row["id"] for row in stored}) == 12
        connections = _held(engine)
        assert (connections.cap, connections.count, connections.free) == (2, 2, 2)
        assert checkouts[0] > 2  # the two held ones were checked out once, the other inserts through the pool
        assert await server_sessions(postgres_url) <= 5  # held ones count against the pool: no more connections
        # Reads take turns (tests/core/test_hot_read_batches.py): a burst needs no more connections.
        rows = await asyncio.gather(*(prompts.read(engine, tenant_id=tenant, id=prompt_id) for _ in range(12)))
        assert {row["id"] for row in rows} == {prompt_id}
        assert (connections.count, connections.free) == (2, 2)
    finally:
        await engine.dispose()


async def test_the_cap_leaves_the_pool_a_connection(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        tenant, prompt_id = await _prompt(engine)
        assert _held(engine).cap == 0  # holding the only connection would starve every session
        await prompts.read(engine, tenant_id=tenant, id=prompt_id)
        async with session_scope(create_session_factory(engine)) as session:  # the pool still has its connection
            await prompts.get(session, tenant_id=tenant, id=prompt_id)
    finally:
        await engine.dispose()


async def test_a_cancelled_statement_does_not_return_its_busy_connection(postgres_url: str) -> None:
    """asyncpg refuses a connection whose statement was interrupted ("another operation is in progress"): it is
    terminated (its backend ends with the statement, it is not kept open), and the next statement runs on a new
    one."""
    engine = create_engine(postgres_url, pool_size=3)
    pg_direct.configure(engine, 1)
    slow = RowReader(engine, select(func.pg_sleep(bindparam("seconds", type_=Float)).label("slept")))
    try:
        assert await slow.one(seconds=0) == {"slept": None}
        connections = _held(engine)
        assert (connections.count, connections.free) == (1, 1)
        pid = connections._free[0].driver.get_server_pid()
        task = asyncio.create_task(slow.one(seconds=1))

        async def sleeping() -> bool:
            return await server_sessions(postgres_url, pid=pid, active=True) == 1

        await _until(sleeping)  # the statement is running on the server
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (connections.count, connections.free) == (0, 0)

        async def gone() -> bool:
            return await server_sessions(postgres_url, pid=pid) == 0

        await _until(gone)  # terminated: the backend exits when its pg_sleep ends
        for _ in range(3):
            assert await slow.one(seconds=0) == {"slept": None}
        assert (connections.count, connections.free) == (1, 1)
    finally:
        await engine.dispose()


async def test_a_restart_retires_every_held_connection_and_the_next_requests_succeed(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=4)
    try:
        tenant, prompt_id = await _prompt(engine)
        await _inserts(engine, tenant, 6)
        connections = _held(engine)
        assert connections.free == 3  # min(the setting's 16, the pool size less one)
        before = list(connections._free)
        assert await terminate_connections(postgres_url) >= 3
        # A read is repeated once on a new connection, so the request that notices the restart is answered.
        assert (await prompts.read(engine, tenant_id=tenant, id=prompt_id))["id"] == prompt_id
        assert all(held.driver.is_closed() for held in before)
        assert not set(connections._free) & set(before) and connections.count == 1
        await memories.insert(engine, tenant_id=tenant, data=MemoryCreate(content="after the restart"))
        assert await terminate_connections(postgres_url) >= 1
        with pytest.raises(OperationalError):  # an insert is never repeated: the lost one might have committed
            await memories.insert(engine, tenant_id=tenant, data=MemoryCreate(content="lost"))
        assert connections.count == 0
        await memories.insert(engine, tenant_id=tenant, data=MemoryCreate(content="after"))
    finally:
        await engine.dispose()


async def test_dispose_closes_the_held_connections(postgres_url: str) -> None:
    async def none_left() -> bool:
        return await server_sessions(postgres_url) == 0

    # At shutdown (Database.dispose): given back to the pool, closed with it.
    database = Database.from_settings(Settings(database_url=postgres_url, database_hot_connections=2))
    tenant, _ = await _prompt(database.engine)
    await _inserts(database.engine, tenant, 4)
    connections = _held(database.engine)
    assert (connections.cap, connections.free) == (2, 2)
    drivers = [held.driver for held in connections._free]
    await database.dispose()
    assert all(driver.is_closed() for driver in drivers) and connections.count == 0
    await _until(none_left)
    # A bare engine.dispose() (a test, a tool) closes them too.
    engine = create_engine(postgres_url)
    await _inserts(engine, tenant, 4)
    drivers = [held.driver for held in _held(engine)._free]
    assert drivers
    await engine.dispose()
    assert all(driver.is_closed() for driver in drivers)
    await _until(none_left)


async def test_hot_connections_setting_zero_turns_them_off(postgres_url: str) -> None:
    database = Database.from_settings(Settings(database_url=postgres_url, database_hot_connections=0))
    try:
        tenant, prompt_id = await _prompt(database.engine)
        checkouts = _checkouts(database.engine)
        await prompts.read(database.engine, tenant_id=tenant, id=prompt_id)
        await memories.insert(database.engine, tenant_id=tenant, data=MemoryCreate(content="pooled"))
        assert checkouts[0] == 2 and _held(database.engine).count == 0
    finally:
        await database.dispose()


async def test_sqlite_holds_no_connections(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await upgrade_async(url)
    database = Database.from_settings(Settings(database_url=url))
    try:
        tenant, prompt_id = await _prompt(database.engine)
        assert (await prompts.read(database.engine, tenant_id=tenant, id=prompt_id))["name"] == "hot"
        await memories.insert(database.engine, tenant_id=tenant, data=MemoryCreate(content="local"))
        assert database.engine not in pg_direct._held
    finally:
        await database.dispose()
