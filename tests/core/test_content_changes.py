"""The content change feed (``vibexp.core.content.changes``): a prompt or artifact created, changed or deleted, a
production label moved, and a key's scopes changed or the key deleted, through one engine (one process's
connections), is seen by a feed on another engine (another process's) within 2 s, once each, on both databases;
a feed nobody listens to reads nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import make_account
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.access import Caller
from vibexp.core.content import schemas, usecases
from vibexp.core.content.changes import Change, ChangeFeed, ChangeKind
from vibexp.core.db import create_engine, session_scope
from vibexp.core.keys import usecases as keys

DEADLINE = 2.0


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Another process's connections: its own engine on the same database."""
    engine = create_engine(database_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
async def feed(database_url: str) -> AsyncIterator[ChangeFeed]:
    engine = create_engine(database_url)
    running = ChangeFeed(async_sessionmaker(engine, expire_on_commit=False), interval=0.1)
    await running.start()
    yield running
    await running.stop()
    await engine.dispose()


async def _heard(seen: list[Change], wanted: Change, started: float) -> float:
    """Seconds until ``wanted`` (compared without its id when the test does not know it) reached ``seen``."""
    while time.monotonic() - started < DEADLINE:
        if any(_same(change, wanted) for change in seen):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    pytest.fail(f"not heard within {DEADLINE} s: {wanted} (heard {seen})")


def _same(change: Change, wanted: Change) -> bool:
    return (
        change.kind == wanted.kind
        and change.tenant_id == wanted.tenant_id
        and change.name == wanted.name
        and change.deleted == wanted.deleted
        and (not wanted.object_id or change.object_id == wanted.object_id)
        and (not wanted.scopes or change.scopes == wanted.scopes)
    )


async def test_every_change_made_elsewhere_is_heard_within_two_seconds_once(
    feed: ChangeFeed, writer: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(writer)
    tenant = account.tenant.id
    owner = Caller.cli(tenant)
    seen: list[Change] = []
    unsubscribe = feed.subscribe(seen.append)
    try:
        started = time.monotonic()
        async with session_scope(writer, write=True) as session:
            prompt = await usecases.prompts.create(
                session, caller=owner, data=schemas.PromptCreate(name="greet", content="Hi {{who}}")
            )
        await _heard(seen, Change(ChangeKind.prompt, tenant, prompt.id, "greet"), started)

        started = time.monotonic()
        async with session_scope(writer, write=True) as session:
            await usecases.artifacts.save(session, caller=owner, project="web", slug="notes", content="x")
        await _heard(seen, Change(ChangeKind.artifact, tenant, "", "web/notes"), started)

        before = len([c for c in seen if c.kind == ChangeKind.prompt])
        started = time.monotonic()
        async with session_scope(writer, write=True) as session:
            await usecases.prompts.update(
                session, caller=owner, where=usecases.prompts.by_name("greet"), data=schemas.PromptUpdate(content="Yo")
            )
        while len([c for c in seen if c.kind == ChangeKind.prompt]) == before:
            assert time.monotonic() - started < DEADLINE, seen
            await asyncio.sleep(0.02)

        started = time.monotonic()
        async with session_scope(writer, write=True) as session:
            await usecases.artifacts.delete(session, caller=owner, where=usecases.artifacts.at("web", "notes"))
        await _heard(seen, Change(ChangeKind.artifact, tenant, "", "web/notes", deleted=True), started)

        started = time.monotonic()
        async with session_scope(writer, write=True) as session:
            await usecases.prompts.delete(session, caller=owner, where=usecases.prompts.by_name("greet"))
        await _heard(seen, Change(ChangeKind.prompt, tenant, prompt.id, "greet", deleted=True), started)

        started = time.monotonic()
        async with session_scope(writer, write=True) as session:
            await keys.set_permissions(
                session, caller=owner, key_id=account.key_id, scopes=["prompts:read"], allowed_cidrs=[]
            )
        await _heard(seen, Change(ChangeKind.key, tenant, account.key_id, scopes=("prompts:read",)), started)

        # Several polls later, still once each: the re-read window does not deliver a change twice.
        await asyncio.sleep(0.5)
        deleted = [c for c in seen if c.deleted]
        assert len(deleted) == 2, seen
        assert len([c for c in seen if c.kind == ChangeKind.artifact]) == 2, seen
        assert all(c.tenant_id == tenant for c in seen if c.kind != ChangeKind.key or c.object_id == account.key_id)
    finally:
        unsubscribe()


async def test_a_feed_nobody_listens_to_reads_nothing(
    feed: ChangeFeed, writer: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(writer)
    async with session_scope(writer, write=True) as session:
        await usecases.prompts.create(
            session, caller=Caller.cli(account.tenant.id), data=schemas.PromptCreate(name="quiet", content="x")
        )
    assert feed.subscribers == 0
    assert await feed.poll_once() == []
    # The first listener hears only what happens after it joined, not the backlog.
    seen: list[Change] = []
    unsubscribe = feed.subscribe(seen.append)
    try:
        await feed.poll_once()
        assert [c for c in seen if c.tenant_id == account.tenant.id] == []
    finally:
        unsubscribe()
        unsubscribe()  # idempotent
    assert feed.subscribers == 0


async def test_a_subscriber_that_raises_does_not_starve_the_others(
    feed: ChangeFeed, writer: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(writer)

    def broken(change: Change) -> None:
        raise RuntimeError("boom")

    seen: list[Change] = []
    undo = [feed.subscribe(broken), feed.subscribe(seen.append)]
    try:
        async with session_scope(writer, write=True) as session:
            await usecases.prompts.create(
                session, caller=Caller.cli(account.tenant.id), data=schemas.PromptCreate(name="loud", content="x")
            )
        await _heard(seen, Change(ChangeKind.prompt, account.tenant.id, "", "loud"), time.monotonic())
    finally:
        for step in undo:
            step()
