"""Migration 0022_grant_usage on a database with usage and alerts recorded before it: the key's rows are kept, rows
may now name a grant instead (exactly one of the two, checked by the database), one open alert per grant and kind,
and the downgrade (which drops the grants' rows) and a second upgrade work (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from helpers.databases import revision_before
from helpers.migrations import columns, downgrade_past, insert_key, insert_tenant, rows, seeded_at
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.migrate import upgrade_async

REVISION = "0022_grant_usage"
TENANT = "00000000-0000-4000-8000-000000000122"
USER = "00000000-0000-4000-8000-000000000222"
KEY = "00000000-0000-4000-8000-000000000322"
GRANT = "00000000-0000-4000-8000-000000000422"
KEY_ALERT = "00000000-0000-4000-8000-000000000522"
GRANT_ALERT = "00000000-0000-4000-8000-000000000622"

_ACTION = (
    "INSERT INTO key_actions (key_id{grant}, tenant_id, at, method, route, action, status, tool_type, client_ip)"
    " VALUES (:k{grant_value}, :t, CURRENT_TIMESTAMP, 'POST', '/mcp/v1/connect', 'list_prompts', 200, 'claude_code',"
    " '8.8.8.8')"
)
_ALERT = (
    "INSERT INTO alerts (id, tenant_id, key_id{grant}, kind, status, first_seen_at, last_seen_at, count, details)"
    " VALUES (:id, :t, :k{grant_value}, 'new_network', 'open', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, '{{}}')"
)
_DELIVERY = (
    "INSERT INTO webhook_deliveries (id, tenant_id, alert_id, url, payload, state, attempts, created_at)"
    " VALUES (:id, :t, :a, 'https://hooks.example.com/x', '{}', 'pending', 0, CURRENT_TIMESTAMP)"
)


def _with_grant(sql: str) -> str:
    return sql.format(grant=", grant_id", grant_value=", :g")


def _key_only(sql: str) -> str:
    return sql.format(grant="", grant_value="")


async def _expect_refused(url: str, sql: str, params: dict[str, object]) -> None:
    """The statement is refused by a constraint, and nothing is written."""
    with pytest.raises(IntegrityError):
        async with seeded_at(url, "head") as conn:
            await conn.execute(text(sql), params)


async def _seed_before(conn: AsyncConnection) -> None:
    await insert_tenant(conn, TENANT, "old")
    await conn.execute(
        text(
            "INSERT INTO users (id, tenant_id, email, password_hash, created_at)"
            " VALUES (:u, :t, 'old@example.com', 'x', CURRENT_TIMESTAMP)"
        ),
        {"u": USER, "t": TENANT},
    )
    await insert_key(conn, KEY, TENANT, prefix="vib_0022abcd", legacy_format=False)
    await conn.execute(
        text(
            "INSERT INTO oauth_clients (id, name, redirect_uris, kind, created_at)"
            " VALUES ('vibexp-client-22', 'Tool', '[\"http://127.0.0.1/cb\"]', 'registered', CURRENT_TIMESTAMP)"
        )
    )
    await conn.execute(
        text(
            "INSERT INTO oauth_grants (id, tenant_id, user_id, client_id, scopes, created_at, updated_at,"
            " request_count) VALUES (:g, :t, :u, 'vibexp-client-22', '[\"prompts:read\"]', CURRENT_TIMESTAMP,"
            " CURRENT_TIMESTAMP, 0)"
        ),
        {"g": GRANT, "t": TENANT, "u": USER},
    )
    await conn.execute(text(_key_only(_ACTION)), {"k": KEY, "t": TENANT})
    await conn.execute(text(_key_only(_ALERT)), {"id": KEY_ALERT, "k": KEY, "t": TENANT})
    await conn.execute(text(_DELIVERY), {"id": KEY_ALERT, "a": KEY_ALERT, "t": TENANT})
    await conn.execute(
        text(
            "INSERT INTO key_networks (key_id, network, first_seen_at, last_seen_at)"
            " VALUES (:k, '8.8.8.0/24', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        {"k": KEY},
    )


async def test_rows_may_name_a_grant_exactly_one_credential_and_the_downgrade_drops_them(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    async with seeded_at(url, revision_before(REVISION)) as conn:
        await _seed_before(conn)
    assert "grant_id" not in await columns(url, "key_actions")

    await upgrade_async(url)
    assert await rows(url, "SELECT key_id, grant_id, action FROM key_actions") == [(KEY, None, "list_prompts")]
    assert await rows(url, "SELECT id, key_id, grant_id FROM alerts") == [(KEY_ALERT, KEY, None)]
    assert await rows(url, "SELECT alert_id FROM webhook_deliveries") == [(KEY_ALERT,)]
    assert await rows(url, "SELECT key_id, network FROM key_networks") == [(KEY, "8.8.8.0/24")]
    async with seeded_at(url, "head") as conn:  # what the flush and the detectors write for a grant now
        await conn.execute(text(_with_grant(_ACTION)), {"k": None, "g": GRANT, "t": TENANT})
        await conn.execute(text(_with_grant(_ALERT)), {"id": GRANT_ALERT, "k": None, "g": GRANT, "t": TENANT})
        await conn.execute(text(_DELIVERY), {"id": GRANT_ALERT, "a": GRANT_ALERT, "t": TENANT})
        for table, column, place in (("grant_networks", "network", "8.8.8.0/24"), ("grant_countries", "country", "US")):
            await conn.execute(
                text(
                    f"INSERT INTO {table} (grant_id, {column}, first_seen_at, last_seen_at)"
                    " VALUES (:g, :p, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"g": GRANT, "p": place},
            )
    # Exactly one credential: neither, or both, is refused; so is a second open alert of one kind on the grant.
    for key_id, grant_id in ((None, None), (KEY, GRANT)):
        await _expect_refused(url, _with_grant(_ACTION), {"k": key_id, "g": grant_id, "t": TENANT})
    await _expect_refused(
        url, _with_grant(_ALERT), {"id": "00000000-0000-4000-8000-000000000722", "k": None, "g": GRANT, "t": TENANT}
    )
    assert len(await rows(url, "SELECT id FROM key_actions")) == 2

    await downgrade_past(url, REVISION)
    assert "grant_id" not in await columns(url, "key_actions") | await columns(url, "alerts")
    assert await rows(url, "SELECT key_id, action FROM key_actions") == [(KEY, "list_prompts")]
    assert await rows(url, "SELECT id, key_id FROM alerts") == [(KEY_ALERT, KEY)]
    assert await rows(url, "SELECT alert_id FROM webhook_deliveries") == [(KEY_ALERT,)]
    # The old partial unique index is back: a second open alert of one kind on the key is refused.
    with pytest.raises(IntegrityError):
        async with seeded_at(url, revision_before(REVISION)) as conn:
            await conn.execute(
                text(_key_only(_ALERT)), {"id": "00000000-0000-4000-8000-000000000822", "k": KEY, "t": TENANT}
            )

    await upgrade_async(url)
    assert "grant_id" in await columns(url, "alerts")
    assert await rows(url, "SELECT count(*) FROM grant_networks") == [(0,)]
    async with seeded_at(url, "head") as conn:
        await conn.execute(text(_with_grant(_ACTION)), {"k": None, "g": GRANT, "t": TENANT})
    assert sorted(await rows(url, "SELECT grant_id FROM key_actions"), key=str) == sorted([(None,), (GRANT,)], key=str)
