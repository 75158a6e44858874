"""The first-run claim (migration 0016_first_run_guard and ``claim_first_run``) on SQLite and PostgreSQL: a database
that already has a user is claimed by the upgrade; on an empty one exactly one claim succeeds."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from helpers.databases import revision_before
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.migrate import upgrade_async
from vibexp.core.users.first_run import FirstRunClaim, FirstRunDone, claim_first_run

TENANT = "00000000-0000-4000-8000-000000000001"
GUARD = "0016_first_run_guard"


async def _claims(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(FirstRunClaim)) or 0)
    finally:
        await engine.dispose()


async def test_upgrading_a_database_with_a_user_claims_its_first_run(empty_database_url: str) -> None:
    await upgrade_async(empty_database_url, revision_before(GUARD))
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tenants (id, name, display_name, tier, suspended, created_at, updated_at)"
                    " VALUES (:t, 'old', 'Old', 'free', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"t": TENANT},
            )
            await conn.execute(
                text(
                    "INSERT INTO users (id, tenant_id, email, password_hash, created_at)"
                    " VALUES ('00000000-0000-4000-8000-000000000002', :t, 'old@example.com', 'x', CURRENT_TIMESTAMP)"
                ),
                {"t": TENANT},
            )
    finally:
        await engine.dispose()
    await upgrade_async(empty_database_url)
    assert await _claims(empty_database_url) == 1
    engine = create_engine(empty_database_url)
    try:
        async with create_session_factory(engine)() as session:
            with pytest.raises(FirstRunDone):
                await claim_first_run(session)
    finally:
        await engine.dispose()


async def test_on_an_empty_database_exactly_one_claim_commits(empty_database_url: str) -> None:
    await upgrade_async(empty_database_url)
    assert await _claims(empty_database_url) == 0
    engine = create_engine(empty_database_url)
    factory = create_session_factory(engine)
    try:
        async with factory() as first:
            await claim_first_run(first)
            await first.rollback()  # a setup that failed later gives its claim back
        assert await _claims(empty_database_url) == 0
        async with factory() as first:
            await claim_first_run(first)
            await first.commit()
        async with factory() as second:
            with pytest.raises(FirstRunDone):
                await claim_first_run(second)
            await second.rollback()
        with pytest.raises(IntegrityError, match=r"ck_first_run_claims_singleton|CHECK constraint failed"):
            async with factory() as third:  # the table holds one row at most, whatever its key
                await third.execute(text("INSERT INTO first_run_claims (id, claimed_at) VALUES (2, CURRENT_TIMESTAMP)"))
                await third.commit()
    finally:
        await engine.dispose()
    assert await _claims(empty_database_url) == 1
