"""``?project=`` on memories is answered by the index ``(tenant_id, project, id)``: no table scan and no sort of
the tenant's memories, on SQLite and PostgreSQL (the statement is captured from ``ContentStore.list`` itself)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers.factories import make_account
from vibexp.core.content.models import Memory
from vibexp.core.content.schemas import MemoryCreate
from vibexp.core.content.service import memories
from vibexp.core.db import create_engine, create_session_factory, session_scope


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def test_project_filter_uses_its_index(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    account = await make_account(factory)
    async with session_scope(factory) as session:
        for n in range(30):
            data = MemoryCreate(content=f"m{n}", project="web" if n % 3 else "api")
            await memories.create(session, tenant_id=account.tenant.id, data=data)

    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "FROM memories" in statement:
            captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    async with session_scope(factory) as session:
        page = await memories.list(session, tenant_id=account.tenant.id, filters={"project": "web"}, limit=5)
    event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert len(page.items) == 5 and {m.project for m in page.items} == {"web"}
    ((statement, parameters),) = captured

    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = " | ".join(str(row[-1]) for row in rows)
            assert "ix_memories_tenant_project_id" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort: the index is already in id order
        else:
            # Few rows: the planner may rightly prefer a scan, or (when it estimates one row, before statistics
            # exist) any tenant index plus a sort of that row. The question is whether an index fits, so scans and
            # sorts are priced out: an index delivering the rows in id order is then chosen if, and only if, it
            # exists. With the rows of the session's other tests PostgreSQL may walk (tenant_id, id) and filter the
            # project instead, also in id order: either index, never a scan or a sort of the tenant's rows.
            # Another tenant's rows make the table more than a page or two, as it is in use: a walk of the primary
            # key that filters both columns (the cheapest plan for a few dozen rows) is then rightly priced out.
            other = await make_account(factory)
            async with session_scope(factory) as session:
                session.add_all(Memory(tenant_id=other.tenant.id, content=f"o{n}", project="web") for n in range(2000))
            await conn.exec_driver_sql("ANALYZE memories")
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            await conn.execute(text("SET LOCAL enable_sort = off"))
            rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            plan = " | ".join(str(row[0]) for row in rows)
            assert "Index Scan using ix_memories_tenant" in plan or "Index Only Scan" in plan, plan
            assert "Seq Scan" not in plan and "Sort" not in plan, plan
