"""Migration 0024_mcp_answers (SQLite and PostgreSQL): the relay table arrives empty on a database that was in use,
takes a question, and the downgrade and a second upgrade work."""

from __future__ import annotations

from sqlalchemy import text

from helpers.databases import revision_before
from helpers.migrations import columns, downgrade_past, insert_tenant, rows, seeded_at, tables
from vibexp.core.migrate import upgrade_async

REVISION = "0024_mcp_answers"
TENANT = "00000000-0000-4000-8000-000000000024"


async def test_the_relay_table_arrives_takes_a_question_and_goes_again(empty_database_url: str) -> None:
    url = empty_database_url
    async with seeded_at(url, revision_before(REVISION)) as conn:
        await insert_tenant(conn, TENANT, "old")
    assert "mcp_answers" not in await tables(url)

    async with seeded_at(url, REVISION) as conn:
        await conn.execute(
            text(
                "INSERT INTO mcp_answers (id, key_id, session_nonce, expires_at)"
                " VALUES ('vibexp-confirm-1', 'k', 'n', 1)"
            )
        )
    assert await columns(url, "mcp_answers") == {"id", "key_id", "session_nonce", "expires_at", "answer"}
    assert await rows(url, "SELECT id, answer FROM mcp_answers") == [("vibexp-confirm-1", None)]

    await downgrade_past(url, REVISION)
    assert "mcp_answers" not in await tables(url)
    assert await rows(url, "SELECT name FROM tenants") == [("old",)]
    await upgrade_async(url)
    assert await rows(url, "SELECT count(*) FROM mcp_answers") == [(0,)]
