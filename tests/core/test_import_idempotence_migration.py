"""Migration 0015_import_idempotence on a database that already holds duplicate memories (the concurrent imports
of issue 26 made them): the upgrade keeps them, imports after it treat them as one memory and add each new memory
once, the full-text search still finds every row, and the downgrade and a second upgrade work (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import json

from alembic import command
from sqlalchemy import text

from helpers.databases import revision_before
from helpers.factories import TEST_ACTOR
from helpers.migrations import insert_tenant
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.content import transfer
from vibexp.core.content.service import memories
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.migrate import alembic_config, upgrade_async

TENANT = "00000000-0000-4000-8000-000000000015"
REVISION = "0015_import_idempotence"


async def _memories(url: str) -> list[tuple[str, str | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT content, import_key FROM memories ORDER BY id"))
            return [(content, key) for content, key in rows]
    finally:
        await engine.dispose()


async def _duplicates_then_imports(url: str) -> None:
    await upgrade_async(url, revision_before(REVISION))
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await insert_tenant(conn, TENANT, "dup")
            for n in (1, 2):  # the same memory twice, as the racing imports left it
                await conn.execute(
                    text(
                        "INSERT INTO memories (id, tenant_id, version, created_at, updated_at, content, tags)"
                        " VALUES (:id, :t, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Deploys on Fridays', '[]')"
                    ),
                    {"id": f"00000000-0000-4000-8000-00000000010{n}", "t": TENANT},
                )
    finally:
        await engine.dispose()

    await upgrade_async(url)
    assert await _memories(url) == [("Deploys on Fridays", None)] * 2  # kept, and not indexed

    engine = create_engine(url)
    factory = create_session_factory(engine)
    body = [json.dumps({"type": "memory", "content": c}).encode() for c in ("Deploys on Fridays", "Prefers tabs")]
    try:
        # Two imports of the same file at once: the duplicate pair is one memory, the new one is added once.
        first, second = await asyncio.gather(
            *(transfer.import_lines(factory, tenant_id=TENANT, actor=TEST_ACTOR, lines=body) for _ in range(2))
        )
        assert first.by_type["memory"]["created"] + second.by_type["memory"]["created"] == 1
        assert first.unchanged + second.unchanged == 3
        async with session_scope(factory) as session:
            found = await memories.list(session, tenant_id=TENANT, q="fridays")
        assert len(found.items) == 2  # the search index still has the old rows
    finally:
        await engine.dispose()
    stored = await _memories(url)
    assert sorted(content for content, _ in stored) == ["Deploys on Fridays"] * 2 + ["Prefers tabs"]
    assert [key for content, key in stored if content == "Prefers tabs"] == [
        transfer.memory_key(None, "Prefers tabs").hex()
    ]

    await asyncio.to_thread(command.downgrade, alembic_config(url), revision_before(REVISION))
    await upgrade_async(url)
    assert len(await _memories(url)) == 3


async def test_existing_duplicates_survive_and_new_imports_are_unique(empty_database_url: str) -> None:
    url = empty_database_url
    await _duplicates_then_imports(url)
