"""Accounts as the adapters use them: the caller's own (``account:read``), and the installation's accounts for those
who administer the installation itself (the CLI and the operator, holders of the database's credentials: no key
reaches these, so there is no scope to check). An account's settings change through ``vibexp.core.account``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, Caller, Scope, requires
from vibexp.core.tenants import service
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantCreate

__all__ = ["account_named", "create_account", "list_accounts", "own_account"]


@requires(Scope.account_read)
async def own_account(session: AsyncSession, *, caller: Caller) -> Tenant:
    """The account the caller acts in (its tier, limit, suspension)."""
    return await service.get_tenant(session, tenant_id=caller.tenant_id)


async def create_account(session: AsyncSession, *, data: TenantCreate, actor: Actor | None = None) -> Tenant:
    """A new account (``AlreadyExists`` when the name is taken), audited ``tenant.created`` by ``actor``."""
    return await service.create_tenant(session, data=data, actor=actor)


async def account_named(session: AsyncSession, *, name: str) -> Tenant:
    """The account with this name (``NotFound`` otherwise)."""
    return await service.get_tenant_by_name(session, name=name)


async def list_accounts(session: AsyncSession) -> list[Tenant]:
    """Every account of the installation."""
    return await service.list_tenants(session)
