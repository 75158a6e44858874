"""Migration 0018_usage_country on a database with usage recorded before it: the old action-log rows are kept with no
country, ``key_countries`` starts empty, new rows carry their country, and the downgrade and a second upgrade work
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import inspect, text

from helpers.databases import revision_before
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.db import create_engine
from vibexp.core.migrate import alembic_config, upgrade_async

REVISION = "0018_usage_country"
TENANT = "00000000-0000-4000-8000-000000000018"
KEY = "00000000-0000-4000-8000-000000000019"


async def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns(table)})
    finally:
        await engine.dispose()


async def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def test_old_actions_keep_no_country_and_the_downgrade_works(empty_database_url: str) -> None:
    url = empty_database_url
    await upgrade_async(url, revision_before(REVISION))
    engine = create_engine(url)
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
                    "INSERT INTO api_keys (id, tenant_id, name, description, prefix, key_hash, status, source,"
                    " created_at, updated_at, request_count, legacy_format)"
                    " VALUES (:k, :t, 'old key', '', 'vib_0123abcd', :hash, 'active',"
                    " 'api', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, false)"
                ),
                {"k": KEY, "t": TENANT, "hash": "0" * 64},
            )
            await conn.execute(
                text(
                    "INSERT INTO key_actions (key_id, tenant_id, at, method, route, action, status, tool_type,"
                    " client_ip) VALUES (:k, :t, CURRENT_TIMESTAMP, 'GET', '/api/v1/prompts', 'GET /api/v1/prompts',"
                    " 200, 'curl', '193.0.6.139')"
                ),
                {"k": KEY, "t": TENANT},
            )
    finally:
        await engine.dispose()
    assert "country" not in await _columns(url, "key_actions")

    await upgrade_async(url)
    assert await _query(url, "SELECT client_ip, country FROM key_actions") == [("193.0.6.139", None)]
    assert await _query(url, "SELECT * FROM key_countries") == []
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:  # what the flush writes now
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
    finally:
        await engine.dispose()

    await asyncio.to_thread(command.downgrade, alembic_config(url), revision_before(REVISION))
    assert "country" not in await _columns(url, "key_actions")
    assert len(await _query(url, "SELECT id FROM key_actions")) == 2  # the rows stay, without their country
    await upgrade_async(url)
    assert sorted(await _query(url, "SELECT client_ip, country FROM key_actions")) == [
        ("193.0.6.139", None),
        ("8.8.8.8", None),
    ]
    assert await _query(url, "SELECT * FROM key_countries") == []
