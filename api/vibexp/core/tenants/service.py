"""Tenants (accounts): tier, hourly limit, suspension."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Actor, Target
from vibexp.core.clock import utcnow
from vibexp.core.errors import AlreadyExists, InvalidInput, NotFound
from vibexp.core.keys.changes import mark_tenant_changed
from vibexp.core.tenants.models import Tenant, Tier
from vibexp.core.tenants.schemas import TenantCreate, TenantUpdate

__all__ = ["create_tenant", "get_tenant", "get_tenant_by_name", "list_tenants", "update_tenant"]


def _check_limit(tier: Tier, rate_limit_per_hour: int | None) -> None:
    if tier is Tier.enterprise and rate_limit_per_hour is None:
        raise InvalidInput("the enterprise tier needs a custom rate limit (requests per hour)")


async def create_tenant(session: AsyncSession, *, data: TenantCreate) -> Tenant:
    _check_limit(data.tier, data.rate_limit_per_hour)
    if await session.scalar(select(Tenant.id).where(Tenant.name == data.name)) is not None:
        raise AlreadyExists(f"a tenant named {data.name!r} already exists")
    tenant = Tenant(
        name=data.name,
        display_name=data.display_name or data.name,
        tier=data.tier.value,
        rate_limit_per_hour=data.rate_limit_per_hour,
        suspended=data.suspended,
    )
    session.add(tenant)
    await session.flush()
    return tenant


async def get_tenant(session: AsyncSession, *, tenant_id: str) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def get_tenant_by_name(session: AsyncSession, *, name: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    return list(await session.scalars(select(Tenant).order_by(Tenant.name)))


#: Tenant fields whose values never go into the audit trail.
_SECRET_FIELDS = frozenset({"alert_webhook_secret"})


def _redacted(value: object) -> str | None:
    return None if value is None else "(secret)"


async def update_tenant(session: AsyncSession, *, tenant: Tenant, data: TenantUpdate, actor: Actor) -> Tenant:
    """Apply the fields ``data`` sets; a change is audited (``tenant.updated``, the old and new values)."""
    changes = data.model_dump(exclude_unset=True)
    tier = Tier(changes.get("tier", tenant.tier))
    limit = changes.get("rate_limit_per_hour", tenant.rate_limit_per_hour)
    _check_limit(tier, limit)
    diff: dict[str, object] = {}
    for field, value in changes.items():
        stored = value.value if isinstance(value, Tier) else value
        if getattr(tenant, field) != stored:
            diff[field] = {"from": getattr(tenant, field), "to": stored}
            if field in _SECRET_FIELDS:  # the audit trail says that it changed, never what it is
                diff[field] = {"from": _redacted(getattr(tenant, field)), "to": _redacted(stored)}
        setattr(tenant, field, stored)
    if not diff:
        return tenant
    tenant.updated_at = utcnow()
    await audit.record(
        session,
        tenant_id=tenant.id,
        action="tenant.updated",
        actor=actor,
        target=Target("tenant", id=tenant.id, name=tenant.name),
        details={"changes": diff},
    )
    mark_tenant_changed(session, tenant.id)
    await session.flush()
    return tenant
