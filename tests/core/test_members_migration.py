"""Migration 0017_teams on a database with data: every existing user becomes the owner of their account, every
existing key a service key that keeps working, and the downgrade and a second upgrade work (SQLite and
PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from helpers.databases import revision_before
from helpers.migrations import downgrade_past, insert_key, insert_tenant, rows, seeded_at
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.migrate import upgrade_async

TENANT = "00000000-0000-4000-8000-000000000017"
USER = "00000000-0000-4000-8000-000000000117"
KEY = "00000000-0000-4000-8000-000000000217"
REVISION = "0017_teams"


async def test_existing_users_become_owners_and_keys_service_keys(empty_database_url: str) -> None:
    url = empty_database_url
    async with seeded_at(url, revision_before(REVISION)) as conn:
        await insert_tenant(conn, TENANT, "team")
        await conn.execute(
            text(
                "INSERT INTO users (id, tenant_id, email, password_hash, created_at)"
                " VALUES (:u, :t, 'ada@example.com', 'x', CURRENT_TIMESTAMP)"
            ),
            {"u": USER, "t": TENANT},
        )
        await insert_key(conn, KEY, TENANT, name="ci", source="cli", legacy_format=False)

    await upgrade_async(url)
    assert await rows(url, "SELECT tenant_id, user_id, role FROM memberships") == [(TENANT, USER, "owner")]
    assert await rows(url, "SELECT id, owner_user_id, scopes FROM api_keys") in (
        [(KEY, None, ["*"])],
        [(KEY, None, '["*"]')],  # SQLite's JSON through a plain text() query
    )
    assert await rows(url, "SELECT count(*) FROM invitations") == [(0,)]

    await downgrade_past(url, REVISION)
    assert await rows(url, "SELECT id FROM api_keys") == [(KEY,)]
    await upgrade_async(url)
    assert await rows(url, "SELECT role FROM memberships") == [("owner",)]
