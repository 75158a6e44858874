"""Migration 0018_usage_country on a database with usage recorded before it: the old action-log rows are kept with no
country, ``key_countries`` starts empty, new rows carry their country, and the downgrade and a second upgrade work
(SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from helpers.databases import revision_before
from helpers.migrations import columns, downgrade_past, insert_key, insert_tenant, rows, seeded_at
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.migrate import upgrade_async

REVISION = "0018_usage_country"
TENANT = "00000000-0000-4000-8000-000000000018"
KEY = "00000000-0000-4000-8000-000000000019"


async def test_old_actions_keep_no_country_and_the_downgrade_works(empty_database_url: str) -> None:
    url = empty_database_url
    async with seeded_at(url, revision_before(REVISION)) as conn:
        await insert_tenant(conn, TENANT, "old")
        await insert_key(conn, KEY, TENANT, prefix="vib_0123abcd", legacy_format=False)
        await conn.execute(
            text(
                "INSERT INTO key_actions (key_id, tenant_id, at, method, route, action, status, tool_type,"
                " client_ip) VALUES (:k, :t, CURRENT_TIMESTAMP, 'GET', '/api/v1/prompts', 'GET /api/v1/prompts',"
                " 200, 'curl', '193.0.6.139')"
            ),
            {"k": KEY, "t": TENANT},
        )
    assert "country" not in await columns(url, "key_actions")

    await upgrade_async(url)
    assert await rows(url, "SELECT client_ip, country FROM key_actions") == [("193.0.6.139", None)]
    assert await rows(url, "SELECT * FROM key_countries") == []
    async with seeded_at(url, "head") as conn:  # what the flush writes now
        await conn.execute(
            text(
                "INSERT INTO key_actions (key_id, tenant_id, at, method, route, action, status, tool_type,"
                " client_ip, country) VALUES (:k, :t, CURRENT_TIMESTAMP, 'GET', '/api/v1/prompts',"
                " 'GET /api/v1/prompts', 200, 'curl', '8.8.8.8', 'US')"
            ),
            {"k": KEY, "t": TENANT},
        )
        await conn.execute(
            text(
                "INSERT INTO key_countries (key_id, country, first_seen_at, last_seen_at)"
                " VALUES (:k, 'US', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"k": KEY},
        )

    await downgrade_past(url, REVISION)
    assert "country" not in await columns(url, "key_actions")
    assert len(await rows(url, "SELECT id FROM key_actions")) == 2  # the rows stay, without their country
    await upgrade_async(url)
    assert sorted(await rows(url, "SELECT client_ip, country FROM key_actions")) == [
        ("193.0.6.139", None),
        ("8.8.8.8", None),
    ]
    assert await rows(url, "SELECT * FROM key_countries") == []
