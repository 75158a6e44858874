"""``vibexp key create/rotate --confirm-destructive`` as a user runs it: the key is made asking before destructive
MCP tools; rotation keeps it unless ``--no-confirm-destructive``; a value given to the flag is bad input (exit 2)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from test_cli import KEY_LINE, vibexp

from vibexp.core.db import session_scope
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tier
from vibexp.core.tenants.schemas import TenantCreate


@pytest.fixture
async def tenant(db_factory: async_sessionmaker[AsyncSession]) -> str:
    name = f"cli-confirm-{uuid.uuid4().hex[:8]}"
    async with session_scope(db_factory) as session:
        await tenants.create_tenant(session, data=TenantCreate(name=name, tier=Tier.pro))
    return name


async def _keys(db_factory: async_sessionmaker[AsyncSession], tenant: str) -> list[ApiKey]:
    async with session_scope(db_factory) as session:
        tenant_id = (await tenants.get_tenant_by_name(session, name=tenant)).id
        query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at, ApiKey.id)
        return list(await session.scalars(query))


async def test_create_and_rotate_with_confirm_destructive(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    made = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "asks", "--confirm-destructive")
    assert made.returncode == 0 and KEY_LINE.match(made.stdout), made.stderr
    assert "destructive MCP tools ask first" in made.stderr
    plain = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "plain")
    assert plain.returncode == 0 and "destructive" not in plain.stderr
    asks, _ = await _keys(db_factory, tenant)
    assert asks.confirm_destructive is True
    assert [k.confirm_destructive for k in await _keys(db_factory, tenant)] == [True, False]
    kept = vibexp(database_url, "key", "rotate", asks.id)
    assert kept.returncode == 0 and "destructive MCP tools ask first" in kept.stderr, kept.stderr
    successor = (await _keys(db_factory, tenant))[-1]
    assert successor.confirm_destructive is True
    dropped = vibexp(database_url, "key", "rotate", successor.id, "--no-confirm-destructive")
    assert dropped.returncode == 0, dropped.stderr
    assert (await _keys(db_factory, tenant))[-1].confirm_destructive is False


async def test_a_value_for_the_flag_is_bad_input(
    database_url: str, tenant: str, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    result = vibexp(database_url, "key", "create", "--tenant", tenant, "--name", "x", "--confirm-destructive=yes")
    assert result.returncode == 2 and result.stdout == ""
    assert "--confirm-destructive" in result.stderr
    assert await _keys(db_factory, tenant) == []
