"""``vibexp key delete`` and ``key rotate``'s expiry as a user runs them (issues 25 and 26): subprocesses against the
test database. Only a revoked key is deleted (off ``key list``, its audit history kept); an active key, an unknown
id or a key deleted already is one ``error:`` line, exit 2, and nothing changes."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_cli import KEY_LINE, vibexp

from vibexp.core.audit.models import AuditEvent
from vibexp.core.db import session_scope
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tier
from vibexp.core.tenants.schemas import TenantCreate


@pytest.fixture
async def tenant(db_factory: async_sessionmaker[AsyncSession]) -> str:
    name = f"cli-delete-{uuid.uuid4().hex[:8]}"
    async with session_scope(db_factory) as session:
        await tenants.create_tenant(session, data=TenantCreate(name=name, tier=Tier.pro))
    return name


def _one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr, result.stderr


def _listed_ids(database_url: str, tenant: str) -> list[str]:
    listing = vibexp(database_url, "key", "list", "--tenant", tenant)
    assert listing.returncode == 0, listing.stderr
    return [row.split("\t")[0] for row in listing.stdout.splitlines()[1:]]


async def _key(db_factory: async_sessionmaker[AsyncSession], key_id: str) -> ApiKey:
    async with session_scope(db_factory) as session:
        key = await session.get(ApiKey, key_id)
        assert key is not None
        return key


async def _only_key_id(db_factory: async_sessionmaker[AsyncSession], tenant: str) -> str:
    async with session_scope(db_factory) as session:
        tenant_id = (await tenants.get_tenant_by_name(session, name=tenant)).id
        (key_id,) = await session.scalars(select(ApiKey.id).where(ApiKey.tenant_id == tenant_id))
        return key_id


async def test_delete_refuses_an_active_key_then_deletes_it_once_revoked(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "old laptop").returncode == 0
    key_id = await _only_key_id(db_factory, tenant)

    _one_line_error(vibexp(database_url, "key", "delete", key_id), "revoke it first")
    assert (await _key(db_factory, key_id)).deleted_at is None and _listed_ids(database_url, tenant) == [key_id]

    assert vibexp(database_url, "key", "revoke", key_id).returncode == 0
    deleted = vibexp(database_url, "key", "delete", key_id)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == "" and f"deleted API key {key_id}" in deleted.stderr
    assert _listed_ids(database_url, tenant) == []
    row = await _key(db_factory, key_id)
    assert row.deleted_at is not None and row.status == "revoked"
    async with session_scope(db_factory) as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == key_id)))
    assert actions.count("key.deleted") == 1 and "key.created" in actions and "key.revoked" in actions

    _one_line_error(vibexp(database_url, "key", "delete", key_id), "no API key with id")  # deleted already


@pytest.mark.parametrize("key_id", ["not-an-id", "01a24d33-4f46-7d97-902f-21abfa338c34"])
def test_delete_of_an_unknown_id_exits_2(database_url: str, key_id: str) -> None:
    _one_line_error(vibexp(database_url, "key", "delete", key_id), "no API key with id")


async def test_rotate_keeps_the_expiry_and_refuses_a_key_in_its_grace_period(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    created = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "ci", "--expires-in", "7d")
    assert created.returncode == 0, created.stderr
    old = await _key(db_factory, await _only_key_id(db_factory, tenant))
    rotated = vibexp(database_url, "key", "rotate", old.id, "--grace-period", "3600")
    assert rotated.returncode == 0 and KEY_LINE.match(rotated.stdout), rotated.stderr
    successor = await _key(db_factory, (await _key(db_factory, old.id)).replaced_by_id or "")
    assert successor.expires_at == old.expires_at  # before: none at all
    assert f"expiring {old.expires_at.isoformat(timespec='seconds')}" in rotated.stderr  # type: ignore[union-attr]

    _one_line_error(vibexp(database_url, "key", "rotate", old.id), "already rotated")
    shorter = vibexp(database_url, "key", "rotate", successor.id, "--expires-in", "1d")
    assert shorter.returncode == 0 and KEY_LINE.match(shorter.stdout), shorter.stderr
