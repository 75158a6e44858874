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
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpers.factories import Account
from helpers.teams import Person, make_person
from vibexp.core.access import Role
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
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


async def test_a_personal_keys_use_marks_its_owner_seen(
    app: FastAPI, client: httpx.AsyncClient, account: Account, session_factory: Factory
) -> None:
    tenant_id = account.tenant.id
    admin = await make_person(session_factory, tenant_id=tenant_id, role=Role.admin)
    member = await make_person(session_factory, tenant_id=tenant_id, role=Role.member)
    viewer = await make_person(session_factory, tenant_id=tenant_id, role=Role.viewer)
    recorder = app.state.runtime.usage
    await recorder.flush()  # nothing of an earlier test's in this flush
    started = utcnow()
    before = await _last_seen(client, admin)  # the admin's own listing is a use: flushed below
    assert before[member.email] is None and before[viewer.email] is None

    assert (await client.get("/api/v1/memories", headers=member.headers)).status_code == 200
    assert (await client.get("/api/v1/memories", headers=viewer.headers)).status_code == 200
    assert (await client.get("/api/v1/memories", headers=account.headers)).status_code == 200  # a service key
    assert (await _last_seen(client, admin))[member.email] is None  # not on the request path: at the flush
    with _membership_updates(session_factory.kw["bind"]) as updates:
        await recorder.flush()
    assert len(updates) == 1, updates  # admin, member and viewer: one statement
    after = await _last_seen(client, admin)
    for person in (admin, member, viewer):
        seen = after[person.email]
        assert seen is not None and started <= seen <= utcnow(), (person.email, seen)


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
