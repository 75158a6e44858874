"""The OAuth purge (SQLite and PostgreSQL): expired codes (used or not) once past their retention, consents whose
code was never exchanged, and registered clients no grant names after a week are deleted, in bounded batches; live
codes, a used code within its retention (a reuse still revokes), grants with tokens, revoked grants and the clients
they name stay. Rows are made by the real flow, then aged in the database."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account
from oauth.flow import Connect, register
from vibexp.core.access import Role
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.oauth import purge
from vibexp.core.oauth.models import ClientKind, OAuthClient, OAuthCode, OAuthGrant
from vibexp.core.oauth.purge import CODE_RETENTION, UNUSED_CLIENT_TTL, OAuthPurge, Purged
from vibexp.core.oauth.tokens import hash_secret

LONG_AGO = timedelta(days=30)


async def _age_grant(factory: async_sessionmaker[AsyncSession], grant_id: str, by: timedelta) -> None:
    """Move a grant and its codes ``by`` into the past."""
    async with session_scope(factory, write=True) as session:
        grant = await session.get(OAuthGrant, grant_id)
        assert grant is not None
        grant.created_at -= by
        for code in await session.scalars(select(OAuthCode).where(OAuthCode.grant_id == grant_id)):
            code.created_at -= by
            code.expires_at -= by


async def _grant_of(factory: async_sessionmaker[AsyncSession], code: str) -> str:
    async with factory() as session:
        row = await session.get(OAuthCode, hash_secret(code))
        assert row is not None
        return row.grant_id


async def _exists(factory: async_sessionmaker[AsyncSession], model: type, key: str) -> bool:
    async with factory() as session:
        return await session.get(model, key) is not None


async def test_what_goes_and_what_stays(
    app: FastAPI, account: Account, oauth_person: Connect, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    factory = session_factory
    alice = await oauth_person(Role.member)
    # A grant with tokens, whose (used) code expired long ago: the code goes, the grant stays.
    used_code = await alice.code()
    assert (await alice.exchange(used_code)).status_code == 200
    with_tokens = await _grant_of(factory, used_code)
    await _age_grant(factory, with_tokens, LONG_AGO)
    # A grant with tokens whose used code expired a moment ago: within the retention, a reuse still revokes.
    recent_code = await alice.code()
    assert (await alice.exchange(recent_code)).status_code == 200
    recent = await _grant_of(factory, recent_code)
    await _age_grant(factory, recent, CODE_RETENTION / 2)
    # An abandoned consent (never exchanged), long ago: grant and code go. A fresh one stays.
    abandoned = await _grant_of(factory, await alice.code())
    await _age_grant(factory, abandoned, LONG_AGO)
    fresh_code = await alice.code()
    fresh = await _grant_of(factory, fresh_code)
    # A revoked grant (never exchanged) long ago: it stays, listed as revoked.
    revoked = await _grant_of(factory, await alice.code())
    assert (await alice.http.delete(f"/api/v1/oauth/grants/{revoked}", headers=alice.person.headers)).status_code == 204
    await _age_grant(factory, revoked, LONG_AGO)
    # Registered clients: one unused for longer than the limit goes; a new one, and old ones with grants, stay.
    old_unused, new_unused = await register(alice.http), await register(alice.http)
    async with session_scope(factory, write=True) as session:
        await session.execute(
            update(OAuthClient)
            .where(OAuthClient.id.in_([old_unused, alice.client_id]))
            .values(created_at=utcnow() - UNUSED_CLIENT_TTL - timedelta(hours=1))
        )
        session.add(
            OAuthClient(
                id="https://tool.example/client.json",
                name="Doc",
                redirect_uris=["https://tool.example/cb"],
                kind=ClientKind.metadata_document.value,
                created_at=utcnow() - LONG_AGO,
            )
        )

    purged = await OAuthPurge(factory, interval=60).purge_once()
    # The used, the abandoned and the revoked grant's codes; the abandoned consent; the unused client.
    assert purged == Purged(codes=3, grants=1, clients=1)

    assert not await _exists(factory, OAuthCode, hash_secret(used_code))
    assert await _exists(factory, OAuthGrant, with_tokens)
    assert not await _exists(factory, OAuthGrant, abandoned)
    assert await _exists(factory, OAuthGrant, fresh) and await _exists(factory, OAuthCode, hash_secret(fresh_code))
    assert await _exists(factory, OAuthGrant, revoked)
    assert not await _exists(factory, OAuthClient, old_unused)
    assert await _exists(factory, OAuthClient, new_unused) and await _exists(factory, OAuthClient, alice.client_id)
    assert await _exists(factory, OAuthClient, "https://tool.example/client.json")
    # The recent used code is still known: presenting it again revokes its grant.
    reused = await alice.exchange(recent_code)
    assert reused.status_code == 400 and "already used" in reused.json()["error_description"]
    async with factory() as session:
        assert (await session.get(OAuthGrant, recent)).revoked_reason == "code_reused"  # type: ignore[union-attr]
    # A purged code is unknown now: refused, and nothing is revoked.
    gone = await alice.exchange(used_code)
    assert gone.status_code == 400 and gone.json()["error"] == "invalid_grant"
    async with factory() as session:
        assert (await session.get(OAuthGrant, with_tokens)).revoked_at is None  # type: ignore[union-attr]
    assert await OAuthPurge(factory, interval=60).purge_once() == Purged()  # nothing left to do


async def test_a_run_deletes_a_bounded_number_in_batches(
    account: Account,
    client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [await register(client) for _ in range(5)]
    async with session_scope(session_factory, write=True) as session:
        await session.execute(update(OAuthClient).where(OAuthClient.id.in_(ids)).values(created_at=utcnow() - LONG_AGO))
    monkeypatch.setattr(purge, "MAX_BATCHES", 2)
    sweeper = OAuthPurge(session_factory, interval=60, batch=2)

    async def left() -> int:
        async with session_factory() as session:
            return int(await session.scalar(select(func.count()).where(OAuthClient.id.in_(ids))) or 0)

    assert (await sweeper.purge_once()).clients == 4 and await left() == 1  # 2 batches of 2
    assert (await sweeper.purge_once()).clients == 1 and await left() == 0
    assert (await sweeper.purge_once()).clients == 0


def test_every_process_runs_it(app: FastAPI) -> None:
    runtime = app.state.runtime
    assert runtime.oauth_purge in runtime.tasks.members
