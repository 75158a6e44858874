"""Migration 0021_oauth on a database with an account made before it: the three tables appear empty, take a client,
a grant and its code, and the downgrade and a second upgrade work (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from helpers.databases import revision_before
from helpers.migrations import downgrade_past, insert_tenant, rows, seeded_at
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.db import create_engine
from vibexp.core.migrate import upgrade_async

REVISION = "0021_oauth"
TENANT = "00000000-0000-4000-8000-000000000021"
USER = "00000000-0000-4000-8000-000000000022"
GRANT = "00000000-0000-4000-8000-000000000023"
TABLES = {"oauth_clients", "oauth_grants", "oauth_codes"}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_the_tables_arrive_take_a_grant_and_go_again(empty_database_url: str) -> None:
    url = empty_database_url
    async with seeded_at(url, revision_before(REVISION)) as conn:
        await insert_tenant(conn, TENANT, "old")
        await conn.execute(
            text(
                "INSERT INTO users (id, tenant_id, email, password_hash, created_at)"
                " VALUES (:u, :t, 'old@example.com', 'x', CURRENT_TIMESTAMP)"
            ),
            {"u": USER, "t": TENANT},
        )
    assert not TABLES & await _tables(url)

    async with seeded_at(url, REVISION) as conn:
        await conn.execute(
            text(
                "INSERT INTO oauth_clients (id, name, redirect_uris, kind, created_at)"
                " VALUES ('vibexp-client-1', 'Tool', '[\"http://127.0.0.1/cb\"]', 'registered', CURRENT_TIMESTAMP)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO oauth_grants (id, tenant_id, user_id, client_id, scopes, created_at, updated_at)"
                " VALUES (:g, :t, :u, 'vibexp-client-1', '[\"prompts:read\"]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"g": GRANT, "t": TENANT, "u": USER},
        )
        await conn.execute(
            text(
                "INSERT INTO oauth_codes (code_hash, grant_id, client_id, redirect_uri, code_challenge, resource,"
                " created_at, expires_at) VALUES (:h, :g, 'vibexp-client-1', 'http://127.0.0.1/cb', 'c', 'r',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"h": "0" * 64, "g": GRANT},
        )
    # The server default counts from zero; no token yet.
    assert await rows(url, "SELECT request_count, revoked_at, access_hash FROM oauth_grants") == [(0, None, None)]

    await downgrade_past(url, REVISION)
    assert not TABLES & await _tables(url)
    assert await rows(url, "SELECT email FROM users") == [("old@example.com",)]
    await upgrade_async(url)
    assert await _tables(url) >= TABLES
