"""Tenants (accounts): tier, hourly limit, suspension.

Below the keys and the alerts: a change is noted for the key verifiers (``Notice.TENANT_CHANGED``,
``vibexp.core.notices``), and a tenant is updated through ``vibexp.core.account.update_tenant``, which has the
alerts check the alert settings first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Target
from vibexp.core.clock import utcnow
from vibexp.core.errors import AlreadyExists, InvalidInput, NotFound
from vibexp.core.notices import Notice, note
from vibexp.core.secret_box import default_box, is_sealed
from vibexp.core.tenants.models import Tenant, Tier
from vibexp.core.tenants.schemas import TenantCreate

__all__ = ["apply_update", "check_update", "create_tenant", "get_tenant", "get_tenant_by_name", "list_tenants"]


def _check_limit(tier: Tier, rate_limit_per_hour: int | None) -> None:
    if tier is Tier.enterprise and rate_limit_per_hour is None:
        raise InvalidInput("the enterprise tier needs a custom rate limit (requests per hour)")


async def create_tenant(session: AsyncSession, *, data: TenantCreate, actor: Actor | None = None) -> Tenant:
    """A new account, audited ``tenant.created`` (by ``actor``; the system when none is given)."""
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
    await audit.record(
        session,
        tenant_id=tenant.id,
        action="tenant.created",
        actor=actor or Actor.system("vibexp"),
        target=Target("tenant", id=tenant.id, name=tenant.name),
        details={"tier": tenant.tier},
    )
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


def _set_webhook_secret(tenant: Tenant, secret: str | None, diff: dict[str, object]) -> None:
    """Store the secret sealed with the server key (``vibexp.core.secret_box``); setting the secret it already
    has (the operator re-applies its Secret on every sync) changes nothing and records nothing."""
    current, field = tenant.alert_webhook_secret, "alert_webhook_secret"
    if secret is None:
        if current is not None:
            diff[field] = "cleared"
            tenant.alert_webhook_secret = None
        return
    box = default_box()
    if current is not None and box.open(current) == secret:
        if not is_sealed(current):
            tenant.alert_webhook_secret = box.seal(secret)  # a plaintext one from before 0014: seal it, quietly
        return
    diff[field] = "changed"
    tenant.alert_webhook_secret = box.seal(secret)


def check_update(tenant: Tenant, changes: dict[str, Any]) -> None:
    """``InvalidInput`` when ``changes`` (a ``TenantUpdate``'s set fields) would leave the tenant's tier and limit
    inconsistent. The alert settings among them are the alerts' to check (``vibexp.core.alerts.settings``)."""
    tier = Tier(changes.get("tier", tenant.tier))
    limit = changes.get("rate_limit_per_hour", tenant.rate_limit_per_hour)
    _check_limit(tier, limit)


async def apply_update(session: AsyncSession, *, tenant: Tenant, changes: dict[str, Any], actor: Actor) -> Tenant:
    """Store ``changes``, checked already (``vibexp.core.account.update_tenant`` checks them); a change is audited
    (``tenant.updated``, the old and new values; for the webhook secret only that it changed)."""
    diff: dict[str, object] = {}
    for field, value in changes.items():
        stored = value.value if isinstance(value, Tier) else value
        if field == "alert_webhook_secret":  # never its value, not even in the trail; encrypted at rest
            _set_webhook_secret(tenant, stored, diff)
            continue
        if getattr(tenant, field) != stored:
            diff[field] = {"from": getattr(tenant, field), "to": stored}
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
    note(session, Notice.TENANT_CHANGED, tenant.id)
    await session.flush()
    return tenant
