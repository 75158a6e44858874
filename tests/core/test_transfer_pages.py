"""``export_lines`` reads one keyset page at a time (memory stays one page, whatever the tenant's size) and pages
through every object exactly once, in id order; ``memory_key`` tells memories apart by project and text."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from vibexp.core.access import Actor
from vibexp.core.content import schemas
from vibexp.core.content.service import ContentStore, memories, prompts
from vibexp.core.content.transfer import export_lines, memory_key
from vibexp.core.db import create_engine, create_session_factory, session_scope


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_export_pages_through_everything_once(
    factory: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await make_account(factory)
    async with session_scope(factory) as session:
        for n in range(7):
            await memories.create(
                session, tenant_id=account.tenant.id, data=schemas.MemoryCreate(content=f"memory {n}")
            )
    pages: list[int] = []
    original = ContentStore.list

    async def counting(self: ContentStore[Any], session: AsyncSession, **kwargs: Any) -> Any:
        page = await original(self, session, **kwargs)
        pages.append(len(page.items))
        return page

    monkeypatch.setattr(ContentStore, "list", counting)
    lines = [
        json.loads(line)
        async for line in export_lines(factory, tenant_id=account.tenant.id, actor=Actor.cli(), page_size=3)
    ]
    # Each exactly once (ids made in one millisecond are ordered by their random bits, not by creation).
    assert sorted(line["content"] for line in lines) == [f"memory {n}" for n in range(7)]
    # prompts (one empty page), artifacts (one empty page), memories in pages of at most 3.
    assert pages == [0, 0, 3, 3, 1]


def test_memory_key_separates_project_and_text() -> None:
    assert memory_key("web", "tabs") == memory_key("web", "tabs")
    assert memory_key("web", "tabs") != memory_key(None, "tabs")
    assert memory_key("a", "b c") != memory_key("a b", "c")


async def test_prompt_history_is_two_queries_per_page_not_one_per_prompt(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    account = await make_account(factory)
    async with session_scope(factory) as session:
        for n in range(7):
            created = await prompts.create(
                session, tenant_id=account.tenant.id, data=schemas.PromptCreate(name=f"p{n}", content="one")
            )
            await prompts.update(session, obj=created, data=schemas.PromptUpdate(content="two"))
    engine = factory.kw["bind"]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        lines = [
            json.loads(line)
            async for line in export_lines(factory, tenant_id=account.tenant.id, actor=Actor.cli(), page_size=3)
        ]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert sorted(line["name"] for line in lines) == [f"p{n}" for n in range(7)]
    assert all([v["content"] for v in line["versions"]] == ["one", "two"] for line in lines)
    # 7 prompts in pages of 3: three pages, each one query for versions and one for labels.
    assert sum("FROM prompt_versions" in s for s in statements) == 3
    assert sum("FROM prompt_labels" in s for s in statements) == 3
