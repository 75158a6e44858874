"""Tenants and keys made through the real core services (the same code the CLI and operator call)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core.access import Actor
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant, Tier
from vibexp.core.tenants.schemas import TenantCreate

#: Who the audit trail says acted when a test calls a core service directly.
TEST_ACTOR = Actor.system("tests")

__all__ = ["TEST_ACTOR", "Account", "make_account", "make_key"]


@dataclass
class Account:
    tenant: Tenant
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_account(
    factory: async_sessionmaker[AsyncSession],
    *,
    tier: Tier = Tier.free,
    rate_limit: int | None = None,
    name: str | None = None,
    suspended: bool = False,
) -> Account:
    async with session_scope(factory) as session:
        tenant = await tenants.create_tenant(
            session,
            data=TenantCreate(
                name=name or f"t-{secrets.token_hex(5)}",
                tier=tier,
                rate_limit_per_hour=rate_limit,
                suspended=suspended,
            ),
        )
        new = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant.id, name="test key", source="cli")
    return Account(tenant=tenant, key=new.plaintext, key_id=new.record.id)


async def make_key(factory: async_sessionmaker[AsyncSession], *, tenant_id: str, name: str = "another key") -> str:
    async with session_scope(factory) as session:
        new = await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant_id, name=name, source="cli")
    return new.plaintext
