"""Checksummed keys (DESIGN.md "Key checksum"): the format, typo'd keys refused with a message that says so and
without a database query, keys made before the checksum still accepted (also after an upgrade with data)."""

from __future__ import annotations

import secrets
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.factories import Account, make_account
from vibexp.core.db import create_engine, session_scope
from vibexp.core.errors import InvalidApiKey
from vibexp.core.keys.models import ApiKey
from vibexp.core.keys.tokens import generate_key, has_valid_checksum, hash_key, validate_key_format
from vibexp.core.keys.verifier import KeyVerifier
from vibexp.core.migrate import upgrade_async

URL = "/api/v1/prompts"


def _legacy_key() -> str:
    """A key as made before the checksum: 64 random hex whose last 8 are (almost surely) not the CRC."""
    while True:
        key = "vib_" + secrets.token_hex(32)
        if not has_valid_checksum(key):
            return key


def _typo(key: str) -> str:
    """The key with one character changed, as a copy-paste slip would."""
    index = 20
    return key[:index] + ("0" if key[index] != "0" else "1") + key[index + 1 :]


async def _make_legacy(factory: async_sessionmaker[AsyncSession]) -> str:
    """A tenant whose key is a pre-checksum key (the record's hash replaced, flagged as the migration flags it)."""
    account = await make_account(factory)
    legacy = _legacy_key()
    async with session_scope(factory) as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == account.key_id)
            .values(key_hash=hash_key(legacy), prefix=legacy[:12], legacy_format=True)
        )
    return legacy


def test_new_keys_are_56_random_hex_and_their_crc32() -> None:
    for _ in range(200):
        key = generate_key()
        validate_key_format(key)
        assert key[60:] == format(zlib.crc32(("vib_" + key[4:60]).encode()), "08x")
        assert has_valid_checksum(key) and not has_valid_checksum(_typo(key))


async def test_new_key_is_checksummed_and_not_legacy(
    account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert has_valid_checksum(account.key)
    async with session_factory() as session:
        assert await session.scalar(select(ApiKey.legacy_format).where(ApiKey.id == account.key_id)) is False


async def test_typo_key_gets_401_saying_typo(client: httpx.AsyncClient, account: Account) -> None:
    assert (await client.get(URL, headers=account.headers)).status_code == 200
    response = await client.get(URL, headers={"Authorization": f"Bearer {_typo(account.key)}"})
    error = assert_error(response, 401, "invalid_api_key")
    assert "typo" in error["message"] and "checksum" in error["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert account.key not in response.text and _typo(account.key) not in response.text


async def test_revoked_key_still_says_revoked(client: httpx.AsyncClient, account: Account) -> None:
    assert (await client.delete(f"/api/v1/api-keys/{account.key_id}", headers=account.headers)).status_code in (
        200,
        204,
    )
    error = assert_error(await client.get(URL, headers=account.headers), 401, "invalid_api_key")
    assert "revoked" in error["message"]


@pytest.mark.fresh_app  # a server reads the legacy digests once: this key must be there before (later ones: the poll)
async def test_pre_checksum_key_keeps_working(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    legacy = await _make_legacy(session_factory)
    assert (await client.get(URL, headers={"Authorization": f"Bearer {legacy}"})).status_code == 200
    # A typo in a legacy key is refused as unknown (its checksum never held, so the lookup decides).
    error = assert_error(
        await client.get(URL, headers={"Authorization": f"Bearer {_typo(legacy)}"}), 401, "invalid_api_key"
    )
    assert "Unknown API key" in error["message"]


class _CountingFactory:
    """A session factory that counts the sessions opened: each is at least one database round trip."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.factory = factory
        self.opened = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        self.opened += 1
        async with self.factory() as session:
            yield session


async def test_checksum_failures_skip_the_database_unless_a_legacy_key_matches(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    legacy = await _make_legacy(session_factory)
    counting = _CountingFactory(session_factory)
    verifier = KeyVerifier(counting)  # type: ignore[arg-type]
    with pytest.raises(InvalidApiKey, match="typo"):
        await verifier.verify(f"Bearer {_typo(generate_key())}")
    assert counting.opened == 1  # the legacy digests, read once
    for _ in range(50):
        with pytest.raises(InvalidApiKey, match="typo"):
            await verifier.verify(f"Bearer {_typo(generate_key())}")
    assert counting.opened == 1
    # The legacy key, whose checksum fails too, is looked up and accepted.
    principal = await verifier.verify(f"Bearer {legacy}")
    assert counting.opened == 2 and principal.key_prefix == legacy[:12]
    # A legacy key inserted later (a replica still on the previous release) is learned from the poll.
    late = await _make_legacy(session_factory)
    await verifier.poll_once()
    assert (await verifier.verify(f"Bearer {late}")).key_id


async def _legacy_rows_after_upgrade(url: str) -> list[tuple[str, bool]]:
    await upgrade_async(url, "0002_hardening")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tenants (id, name, display_name, tier, suspended, created_at, updated_at)"
                    " VALUES ('00000000-0000-4000-8000-000000000001', 'old', 'Old', 'free', false,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO api_keys (id, tenant_id, name, description, prefix, key_hash, status, source,"
                    " created_at, updated_at, request_count) VALUES ('00000000-0000-4000-8000-000000000002',"
                    " '00000000-0000-4000-8000-000000000001', 'old', '', 'vib_00000000', :h, 'active', 'cli',"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
                ),
                {"h": "a" * 64},
            )
        await upgrade_async(url)
        async with engine.connect() as conn:
            return [(r[0], bool(r[1])) for r in await conn.execute(text("SELECT name, legacy_format FROM api_keys"))]
    finally:
        await engine.dispose()


async def test_upgrade_flags_existing_keys_as_legacy(empty_database_url: str) -> None:
    assert await _legacy_rows_after_upgrade(empty_database_url) == [("old", True)]
