"""The write hot path of issue #13: a memory stored in one autocommitted statement (``vibexp.core.hotwrite``) is
the row the ORM would have written, committed and visible to every process at once; SQLite writers of one process
take turns on a lock instead of SQLite's sleeping busy handler; lost connections are errors, never repeated."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers.databases import sqlite_url, terminate_connections
from helpers.factories import make_account
from vibexp.core.content.schemas import MemoryCreate
from vibexp.core.content.service import memories
from vibexp.core.db import create_engine, create_session_factory, writing
from vibexp.core.errors import NotFound
from vibexp.core.migrate import upgrade_async


async def test_inserted_memory_is_the_row_the_orm_reads_back_from_another_engine(database_url: str) -> None:
    writer, reader = create_engine(database_url), create_engine(database_url)
    try:
        account = await make_account(create_session_factory(writer))
        data = MemoryCreate(content="prefers tabs ✓", tags=["style", "é"])
        row = await memories.insert(writer, tenant_id=account.tenant.id, data=data)
        assert row["version"] == 1 and row["created_at"].tzinfo is not None
        async with create_session_factory(reader)() as session:  # committed: another pool sees it at once
            stored = await memories.get(session, tenant_id=account.tenant.id, id=row["id"])
        assert (stored.content, stored.tags, stored.version) == ("prefers tabs ✓", ["style", "é"], 1)
        assert stored.created_at == row["created_at"] and stored.updated_at == row["updated_at"]
        assert await memories.read(reader, tenant_id=account.tenant.id, id=row["id"]) == {
            column: getattr(stored, column) for column in row
        }
    finally:
        await writer.dispose()
        await reader.dispose()


async def test_insert_for_a_deleted_tenant_is_refused_and_stores_nothing(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with pytest.raises(NotFound, match="tenant"):  # the foreign key (SQLite: PRAGMA foreign_keys=ON)
            await memories.insert(engine, tenant_id="no-such-tenant", data=MemoryCreate(content="orphan"))
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if engine.dialect.name == "sqlite":
                count = (await driver.execute_fetchall("SELECT count(*) FROM memories WHERE content = 'orphan'"))[0][0]
                assert driver.isolation_level is not None and not driver.in_transaction  # mode restored
            else:
                count = await driver.fetchval("SELECT count(*) FROM memories WHERE content = 'orphan'")
        assert count == 0
    finally:
        await engine.dispose()


async def test_sqlite_writers_of_one_process_take_turns(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with writing(engine):  # a writer holds its turn: the next one waits, it does not start
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_enter(engine), timeout=0.2)
        await asyncio.wait_for(_enter(engine), timeout=1)  # released: the next one goes at once
        account = await make_account(create_session_factory(engine))
        rows = await asyncio.gather(
            *(
                memories.insert(engine, tenant_id=account.tenant.id, data=MemoryCreate(content=f"m{i}"))
                for i in range(40)
            )
        )
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            stored = await driver.execute_fetchall("SELECT count(*) FROM memories")
        assert stored[0][0] == len({row["id"] for row in rows}) == 40
    finally:
        await engine.dispose()


async def test_postgres_writers_do_not_queue(postgres_url: str) -> None:
    """PostgreSQL locks rows, not the database: ``writing`` is no gate there."""
    engine = create_engine(postgres_url)
    try:
        async with writing(engine):
            await asyncio.wait_for(_enter(engine), timeout=1)
    finally:
        await engine.dispose()


async def test_insert_on_a_connection_the_server_dropped_fails_and_the_next_one_succeeds(postgres_url: str) -> None:
    """A lost connection is an error (the HTTP adapter answers 503), never silently repeated: the insert might have
    committed. The pool is rebuilt, so the next insert works."""
    engine = create_engine(postgres_url, pool_size=2)
    try:
        account = await make_account(create_session_factory(engine))
        await memories.insert(engine, tenant_id=account.tenant.id, data=MemoryCreate(content="before"))
        killed = await terminate_connections(postgres_url)
        assert killed >= 1
        with pytest.raises(OperationalError):
            await memories.insert(engine, tenant_id=account.tenant.id, data=MemoryCreate(content="lost"))
        await memories.insert(engine, tenant_id=account.tenant.id, data=MemoryCreate(content="after"))
    finally:
        await engine.dispose()


async def _enter(engine: AsyncEngine) -> None:
    async with writing(engine):
        pass
