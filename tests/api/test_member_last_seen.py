"""A member is "seen" when one of their personal keys is used (issue 28, "Teams"): the usage flush sets
``memberships.last_seen_at`` (never backwards) from the owner the key verifier cached, off the request path and in
one UPDATE statement per flush; ``GET /api/v1/members`` shows it. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account
from helpers.teams import Person, make_person
from vibexp.core.access import Role
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.traffic import UsageEvent
from vibexp.core.usage.recorder import UsageRecorder
from vibexp.core.users.models import Membership

Factory = async_sessionmaker[AsyncSession]
MEMBERS = "/api/v1/members"


async def _last_seen(client: httpx.AsyncClient, admin: Person) -> dict[str, datetime | None]:
    listed = await client.get(MEMBERS, headers=admin.headers)
    assert listed.status_code == 200, listed.text
    return {
        row["email"]: datetime.fromisoformat(row["last_seen_at"]) if row["last_seen_at"] else None
        for row in listed.json()["items"]
    }


@contextmanager
def _membership_updates(engine: AsyncEngine) -> Iterator[list[str]]:
    """The UPDATE statements on ``memberships`` the engine runs meanwhile (an executemany counts once)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE MEMBERSHIPS"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_a_personal_keys_use_over_rest_shows_in_the_members_list(
    app: FastAPI, client: httpx.AsyncClient, account: Account, session_factory: Factory
) -> None:
    tenant_id = account.tenant.id
    admin = await make_person(session_factory, tenant_id=tenant_id, role=Role.admin)
    member = await make_person(session_factory, tenant_id=tenant_id, role=Role.member)
    viewer = await make_person(session_factory, tenant_id=tenant_id, role=Role.viewer)
    started = utcnow()
    before = await _last_seen(client, admin)
    assert before[member.email] is None and before[viewer.email] is None
    assert (await client.get("/api/v1/memories", headers=member.headers)).status_code == 200
    assert (await client.get("/api/v1/memories", headers=account.headers)).status_code == 200  # a service key
    await app.state.runtime.usage.flush()  # the background flush may have run already: this one forces it
    after = await _last_seen(client, admin)
    for person in (admin, member):
        seen = after[person.email]
        assert seen is not None and started <= seen <= utcnow(), (person.email, seen)
    assert after[viewer.email] is None  # their key was not used


def _use(key_id: str, tenant_id: str, owner: str | None, at: datetime) -> UsageEvent:
    return UsageEvent(key_id, tenant_id, at, "GET", "/api/v1/memories", "list", 200, "curl", None, owner)


async def _seen(factory: Factory, tenant_id: str) -> dict[str, datetime | None]:
    async with factory() as session:
        rows = await session.execute(
            select(Membership.user_id, Membership.last_seen_at).where(Membership.tenant_id == tenant_id)
        )
        return {user_id: seen for user_id, seen in rows}


async def test_the_flush_marks_owners_seen_in_one_statement(db_factory: Factory) -> None:
    account = await make_account(db_factory)
    tenant_id = account.tenant.id
    people = [await make_person(db_factory, tenant_id=tenant_id, role=role) for role in (Role.member, Role.viewer)]
    engine = db_factory.kw["bind"]
    recorder = UsageRecorder(engine)  # not started: only the flush below writes
    now = utcnow().replace(microsecond=0)
    for person in people:  # each person twice, out of order: the latest use counts
        recorder.record(_use(person.key_id, tenant_id, person.user_id, now - timedelta(seconds=5)))
        recorder.record(_use(person.key_id, tenant_id, person.user_id, now - timedelta(seconds=30)))
    recorder.record(_use(account.key_id, tenant_id, None, now))  # a service key: nobody
    assert all(seen is None for seen in (await _seen(db_factory, tenant_id)).values())  # recording writes nothing
    with _membership_updates(engine) as updates:
        assert await recorder.flush() == 5
    assert len(updates) == 1, updates
    seen = await _seen(db_factory, tenant_id)
    assert {person.user_id: seen[person.user_id] for person in people} == {
        person.user_id: now - timedelta(seconds=5) for person in people
    }


async def test_last_seen_never_moves_backwards(
    app: FastAPI, client: httpx.AsyncClient, account: Account, session_factory: Factory
) -> None:
    tenant_id = account.tenant.id
    admin = await make_person(session_factory, tenant_id=tenant_id, role=Role.admin)
    member = await make_person(session_factory, tenant_id=tenant_id, role=Role.member)
    later = (utcnow() + timedelta(hours=1)).replace(microsecond=0)  # say, a sign-in on a host with a fast clock
    async with session_scope(session_factory, write=True) as session:
        await session.execute(
            update(Membership)
            .where(Membership.tenant_id == tenant_id, Membership.user_id == member.user_id)
            .values(last_seen_at=later)
        )
    assert (await client.get("/api/v1/memories", headers=member.headers)).status_code == 200
    await app.state.runtime.usage.flush()
    assert (await _last_seen(client, admin))[member.email] == later
