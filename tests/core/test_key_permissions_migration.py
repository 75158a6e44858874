"""Migration 0011_key_permissions on a database with a key made before scopes: the key keeps full access (``*``),
no allow-list, and its tenant has no key policy (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from helpers.migrations import insert_key, insert_tenant
from vibexp.core import models  # noqa: F401 - registers every table on Base.metadata
from vibexp.core.access import ALL_SCOPES
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.keys.tokens import display_prefix, generate_key, hash_key
from vibexp.core.keys.verifier import KeyVerifier
from vibexp.core.migrate import upgrade_async

TENANT = "00000000-0000-4000-8000-000000000011"


async def _old_key_after_upgrade(url: str) -> tuple[frozenset[str], tuple[str, ...], list[object]]:
    await upgrade_async(url, "0010_alerts")
    key = generate_key()
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await insert_tenant(conn, TENANT, "old")
            await insert_key(
                conn,
                "00000000-0000-4000-8000-000000000012",
                TENANT,
                prefix=display_prefix(key),
                key_hash=hash_key(key),
                legacy_format=False,
            )
        await upgrade_async(url)
        verifier = KeyVerifier(create_session_factory(engine))
        principal = await verifier.verify(f"Bearer {key}")
        async with engine.connect() as conn:
            policy = list(
                (await conn.execute(text("SELECT max_key_lifetime_days, revoke_unused_after_days FROM tenants"))).one()
            )
        return principal.granted, principal.scopes, policy
    finally:
        await engine.dispose()


async def test_a_key_made_before_scopes_keeps_full_access(empty_database_url: str) -> None:
    url = empty_database_url
    granted, names, policy = await _old_key_after_upgrade(url)
    assert names == ("*",)
    assert granted == frozenset(ALL_SCOPES)
    assert policy == [None, None]
