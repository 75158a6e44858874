"""The engine and hot-read choices of issue #13: pooled SQLite connections, no TLS on loopback, reads without a
session that still see every committed write, and recovery from connections the database dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from helpers.databases import sqlite_url, terminate_connections
from helpers.factories import make_account
from vibexp.core.content.schemas import PromptCreate, PromptUpdate
from vibexp.core.content.service import prompts
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.errors import NotFound
from vibexp.core.migrate import upgrade_async


def _count_connects(engine: Any) -> list[int]:
    connects = [0]

    @event.listens_for(engine.sync_engine, "connect")
    def _connected(*_: Any) -> None:
        connects[0] += 1

    return connects


async def test_sqlite_engine_keeps_its_connections_under_concurrency(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await upgrade_async(url)
    engine = create_engine(url, pool_size=20, max_overflow=5)
    connects = _count_connects(engine)

    async def read() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.01)  # hold it, so 16 are checked out at once

    try:
        await asyncio.gather(*(read() for _ in range(16)))
        opened = connects[0]
        assert opened <= 16
        for _ in range(5):
            await asyncio.gather(*(read() for _ in range(16)))
        # SQLAlchemy's SQLite default (5 + 10 overflow) closed 11 of them on return and reopened them every round.
        assert connects[0] == opened, f"{connects[0] - opened} connections reopened under a steady load of 16"
    finally:
        await engine.dispose()


async def test_sqlite_connection_returned_inside_a_transaction_is_rolled_back(tmp_path: Path) -> None:
    """Reset-on-return only skips the rollback when no transaction is open; an abandoned write is still undone."""
    url = sqlite_url(tmp_path)
    await upgrade_async(url)
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.execute("INSERT INTO alembic_version (version_num) VALUES ('abandoned')")
            assert driver.in_transaction
        async with engine.connect() as conn:  # the same (only) connection, back from the pool
            driver = (await conn.get_raw_connection()).driver_connection
            assert not driver.in_transaction
            rows = await driver.execute_fetchall("SELECT count(*) FROM alembic_version WHERE version_num = 'abandoned'")
            assert rows[0][0] == 0
    finally:
        await engine.dispose()


async def test_postgres_on_loopback_connects_without_tls(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.scalar(text("SHOW ssl"))) == "on"  # the server offers TLS ...
            used = await conn.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        assert used is False  # ... and a loopback connection does not take it (asyncpg's default would)
    finally:
        await engine.dispose()
    explicit = make_url(postgres_url).update_query_dict({"ssl": "require"})
    engine = create_engine(explicit.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:  # an explicit choice in the URL is respected
            assert await conn.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) is True
    finally:
        await engine.dispose()


async def test_hot_read_sees_every_write_of_another_process_at_once(database_url: str) -> None:
    """Read-your-writes across replicas: the session-less read caches nothing but SQL."""
    writer, reader = create_engine(database_url), create_engine(database_url)
    try:
        factory = create_session_factory(writer)
        account = await make_account(factory)
        other = await make_account(factory)
        async with session_scope(factory) as session:
            created = await prompts.create(
                session, tenant_id=account.tenant.id, data=PromptCreate(name="hot", content="v1", tags=["a", "é"])
            )
        row = await prompts.read(reader, tenant_id=account.tenant.id, id=created.id)
        assert row["content"] == "v1" and row["version"] == 1 and row["tags"] == ["a", "é"]
        assert row["created_at"].tzinfo is not None and row["created_at"] == created.created_at
        assert (await prompts.read(reader, tenant_id=account.tenant.id, name="hot"))["id"] == created.id
        async with session_scope(factory) as session:
            obj = await prompts.get(session, tenant_id=account.tenant.id, id=created.id)
            await prompts.update(session, obj=obj, data=PromptUpdate(content="v2"))
        row = await prompts.read(reader, tenant_id=account.tenant.id, id=created.id)
        assert (row["content"], row["version"]) == ("v2", 2)
        with pytest.raises(NotFound):  # another tenant's object is indistinguishable from a missing one
            await prompts.read(reader, tenant_id=other.tenant.id, id=created.id)
        with pytest.raises(NotFound):
            await prompts.read(reader, tenant_id=account.tenant.id, id="nul\x00")
    finally:
        await writer.dispose()
        await reader.dispose()


async def test_hot_read_recovers_when_the_database_drops_its_connections(postgres_url: str) -> None:
    """No pre-ping: a read on a connection the server killed (a restart, a failover) is repeated on a new one."""
    engine = create_engine(postgres_url, pool_size=4)
    try:
        factory = create_session_factory(engine)
        account = await make_account(factory)
        async with session_scope(factory) as session:
            created = await prompts.create(
                session, tenant_id=account.tenant.id, data=PromptCreate(name="survivor", content="x")
            )
        await asyncio.gather(*(prompts.read(engine, tenant_id=account.tenant.id, id=created.id) for _ in range(4)))
        killed = await terminate_connections(postgres_url)
        assert killed >= 1
        for _ in range(3):  # every request succeeds, the first one included
            row = await prompts.read(engine, tenant_id=account.tenant.id, id=created.id)
            assert row["name"] == "survivor"
    finally:
        await engine.dispose()
