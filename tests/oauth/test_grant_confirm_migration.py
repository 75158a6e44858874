"""Migration 0023_grant_confirm on a database with a grant made before it (SQLite and PostgreSQL): the grant asks
nothing (``confirm_destructive`` false, the server default, also for a row an older replica inserts during the
rolling upgrade), a new grant may ask, and the downgrade drops the column and keeps the grants."""

from __future__ import annotations

from sqlalchemy import text

from helpers.migrations import columns, downgrade_past, insert_tenant, rows, seeded_at
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.migrate import upgrade_async

REVISION = "0023_grant_confirm"
BEFORE = "0021_oauth"
TENANT = "00000000-0000-4000-8000-000000000231"
USER = "00000000-0000-4000-8000-000000000232"
GRANTS = ("00000000-0000-4000-8000-000000000233", "00000000-0000-4000-8000-000000000234")
_GRANT = (
    "INSERT INTO oauth_grants (id, tenant_id, user_id, client_id, scopes, created_at, updated_at)"
    " VALUES (:g, :t, :u, 'vibexp-client-1', '[\"memories:write\"]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)


async def test_old_grants_ask_nothing_and_the_downgrade_keeps_them(empty_database_url: str) -> None:
    url = empty_database_url
    async with seeded_at(url, BEFORE) as conn:
        await insert_tenant(conn, TENANT, "old")
        await conn.execute(
            text(
                "INSERT INTO users (id, tenant_id, email, password_hash, created_at)"
                " VALUES (:u, :t, 'old@example.com', 'x', CURRENT_TIMESTAMP)"
            ),
            {"u": USER, "t": TENANT},
        )
        await conn.execute(
            text(
                "INSERT INTO oauth_clients (id, name, redirect_uris, kind, created_at)"
                " VALUES ('vibexp-client-1', 'Tool', '[\"http://127.0.0.1/cb\"]', 'registered', CURRENT_TIMESTAMP)"
            )
        )
        await conn.execute(text(_GRANT), {"g": GRANTS[0], "t": TENANT, "u": USER})
    assert "confirm_destructive" not in await columns(url, "oauth_grants")

    async with seeded_at(url, REVISION) as conn:
        # An insert that does not name the column (a replica of the previous release) gets the default.
        await conn.execute(text(_GRANT), {"g": GRANTS[1], "t": TENANT, "u": USER})
    assert await rows(url, "SELECT id, confirm_destructive FROM oauth_grants ORDER BY id") == [
        (GRANTS[0], False),
        (GRANTS[1], False),
    ]

    await downgrade_past(url, REVISION)
    assert "confirm_destructive" not in await columns(url, "oauth_grants")
    assert await rows(url, "SELECT id FROM oauth_grants ORDER BY id") == [(GRANTS[0],), (GRANTS[1],)]
    await upgrade_async(url)
    assert "confirm_destructive" in await columns(url, "oauth_grants")
