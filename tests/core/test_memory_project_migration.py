"""Migration 0008_memory_project on a database with memories in it: they keep their text, have no project, and the
``?project=`` index exists (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from helpers.migrations import insert_tenant
from vibexp.core.db import create_engine
from vibexp.core.migrate import upgrade_async

TENANT = "00000000-0000-4000-8000-000000000001"


async def _upgrade_with_data(url: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    await upgrade_async(url, "0005_security")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await insert_tenant(conn, TENANT, "old")
            await conn.execute(
                text(
                    "INSERT INTO memories (id, tenant_id, version, created_at, updated_at, content, tags)"
                    " VALUES ('00000000-0000-4000-8000-000000000002', :t, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP,"
                    " 'kept through the upgrade', '[\"old\"]')"
                ),
                {"t": TENANT},
            )
        await upgrade_async(url)
        async with engine.connect() as conn:
            rows = [(r[0], r[1]) for r in await conn.execute(text("SELECT content, project FROM memories"))]
            indexes = await conn.run_sync(lambda sync: [i["name"] for i in inspect(sync).get_indexes("memories")])
        return rows, [name for name in indexes if name]
    finally:
        await engine.dispose()


async def test_upgrade_keeps_memories_without_a_project(empty_database_url: str) -> None:
    url = empty_database_url
    rows, indexes = await _upgrade_with_data(url)
    assert rows == [("kept through the upgrade", None)]
    assert "ix_memories_tenant_project_id" in indexes
