"""Migration 0017_teams on a database with data: every existing user becomes the owner of their account, every
existing key a service key that keeps working, and the downgrade and a second upgrade work (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import text

from helpers.databases import revision_before
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.db import create_engine
from vibexp.core.migrate import alembic_config, upgrade_async

TENANT = "00000000-0000-4000-8000-000000000017"
USER = "00000000-0000-4000-8000-000000000117"
KEY = "00000000-0000-4000-8000-000000000217"
REVISION = "0017_teams"


async def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def test_existing_users_become_owners_and_keys_service_keys(empty_database_url: str) -> None:
    url = empty_database_url
    await upgrade_async(url, revision_before(REVISION))
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tenants (id, name, display_name, tier, suspended, created_at, updated_at)"
                    " VALUES (:t, 'team', 'Team', 'free', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"t": TENANT},
            )
            await conn.execute(
                text(
                    "INSERT INTO users (id, tenant_id, email, password_hash, created_at)"
                    " VALUES (:u, :t, 'ada@example.com', 'x', CURRENT_TIMESTAMP)"
                ),
                {"u": USER, "t": TENANT},
            )
            await conn.execute(
                text(
                    "INSERT INTO api_keys (id, tenant_id, name, description, prefix, key_hash, status, source,"
                    " created_at, updated_at, request_count)"
                    " VALUES (:k, :t, 'ci', '', 'vib_00000000', :h, 'active', 'cli',"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
                ),
                {"k": KEY, "t": TENANT, "h": "0" * 64},
            )
    finally:
        await engine.dispose()

    await upgrade_async(url)
    assert await _rows(url, "SELECT tenant_id, user_id, role FROM memberships") == [(TENANT, USER, "owner")]
    assert await _rows(url, "SELECT id, owner_user_id, scopes FROM api_keys") in (
        [(KEY, None, ["*"])],
        [(KEY, None, '["*"]')],  # SQLite's JSON through a plain text() query
    )
    assert await _rows(url, "SELECT count(*) FROM invitations") == [(0,)]

    await asyncio.to_thread(command.downgrade, alembic_config(url), revision_before(REVISION))
    assert await _rows(url, "SELECT id FROM api_keys") == [(KEY,)]
    await upgrade_async(url)
    assert await _rows(url, "SELECT role FROM memberships") == [("owner",)]
