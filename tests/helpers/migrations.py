"""The migration tests' shared steps: seed a database at an old revision with plain SQL (the models describe the
newest schema, not the one being migrated from), then read it back, and step down and up again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from helpers.databases import revision_before
from vibexp.core.db import create_engine
from vibexp.core.migrate import alembic_config, upgrade_async

#: What every revision's ``tenants`` has had since the first.
_TENANT = (
    "INSERT INTO tenants (id, name, display_name, tier, suspended, created_at, updated_at)"
    " VALUES (:id, :name, :name, 'free', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)
#: ``api_keys`` as it was before key permissions (0011); ``legacy_format`` came with key checksums.
_KEY = (
    "INSERT INTO api_keys (id, tenant_id, name, description, prefix, key_hash, status, source,"
    " created_at, updated_at, request_count{extra}) VALUES (:id, :tenant_id, :name, '', :prefix, :key_hash, 'active',"
    " :source, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0{extra_value})"
)


@asynccontextmanager
async def seeded_at(url: str, revision: str) -> AsyncIterator[AsyncConnection]:
    """Migrate ``url`` up to ``revision`` and give one transaction to fill it in (committed on leaving)."""
    await upgrade_async(url, revision)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def insert_tenant(conn: AsyncConnection, tenant_id: str, name: str) -> None:
    await conn.execute(text(_TENANT), {"id": tenant_id, "name": name})


async def insert_key(
    conn: AsyncConnection,
    key_id: str,
    tenant_id: str,
    *,
    name: str = "old key",
    prefix: str = "vib_00000000",
    key_hash: str = "0" * 64,
    source: str = "api",
    legacy_format: bool | None = None,
) -> None:
    """An active key as an old revision stored it; ``legacy_format`` only where that column exists."""
    extra, extra_value = (", legacy_format", ", :legacy_format") if legacy_format is not None else ("", "")
    params: dict[str, Any] = {
        "id": key_id,
        "tenant_id": tenant_id,
        "name": name,
        "prefix": prefix,
        "key_hash": key_hash,
        "source": source,
        "legacy_format": legacy_format,
    }
    await conn.execute(text(_KEY.format(extra=extra, extra_value=extra_value)), params)


async def rows(url: str, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """What a plain query answers, as tuples, from its own short-lived engine."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql), dict(params or {}))]
    finally:
        await engine.dispose()


async def columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns(table)})
    finally:
        await engine.dispose()


async def tables(url: str) -> set[str]:
    """The names of the database's tables."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def downgrade_past(url: str, revision: str) -> None:
    """Step back to the revision before ``revision`` (alembic's command is synchronous: in a thread)."""
    await asyncio.to_thread(command.downgrade, alembic_config(url), revision_before(revision))
