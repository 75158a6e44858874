"""Tenants (accounts): tier, hourly limit, suspension."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts import hours
from vibexp.core.alerts.destinations import DestinationPolicy, DestinationRefused
from vibexp.core.alerts.secret_box import default_box, is_sealed
from vibexp.core.alerts.service import parse_auto_revoke_kinds
from vibexp.core.alerts.targets import check_webhook_secret, check_webhook_url
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Actor, Target
from vibexp.core.clock import utcnow
from vibexp.core.config import get_settings
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


def _server_urls() -> list[str]:
    """The addresses this server answers at, from the shared settings (every process reads the same variables)."""
    settings = get_settings()
    return [settings.public_url, *settings.server_urls, *settings.replica_urls]


async def _alert_settings(tenant: Tenant, changes: dict[str, Any], server_urls: Iterable[str] | None) -> None:
    """Check and normalise the alert settings among ``changes`` in place (``InvalidInput`` for a bad one)."""
    if changes.get("alert_webhook_url") is not None:
        own = list(_server_urls() if server_urls is None else server_urls)
        wanted = check_webhook_url(changes["alert_webhook_url"], server_urls=own)
        # Resolved and checked as the sender will check it (this server, replicas, private and metadata addresses).
        policy = DestinationPolicy(own, allow_private=get_settings().webhook_allow_private)
        try:
            await policy.check_when_set(wanted)
        except DestinationRefused as exc:
            raise InvalidInput(f"webhook URL {wanted!r}: {exc}") from None
    if changes.get("alert_webhook_secret") is not None:
        check_webhook_secret(changes["alert_webhook_secret"])
    url = changes.get("alert_webhook_url", tenant.alert_webhook_url)
    secret = changes.get("alert_webhook_secret", tenant.alert_webhook_secret)
    if url is not None and secret is None:  # every delivery is signed (X-VibeXP-Signature)
        raise InvalidInput("a webhook URL needs a webhook secret (16 to 200 characters) to sign its deliveries")
    if "working_hours" in changes:
        text = (changes["working_hours"] or "").strip()
        changes["working_hours"] = hours.parse(text).text if text else None
    if "auto_revoke_on" in changes:
        changes["auto_revoke_on"] = parse_auto_revoke_kinds(changes["auto_revoke_on"] or [])


def _set_webhook_secret(tenant: Tenant, secret: str | None, diff: dict[str, object]) -> None:
    """Store the secret sealed with the server key (``vibexp.core.alerts.secret_box``); setting the secret it already
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


async def update_tenant(
    session: AsyncSession,
    *,
    tenant: Tenant,
    data: TenantUpdate,
    actor: Actor,
    server_urls: Iterable[str] | None = None,
) -> Tenant:
    """Apply the fields ``data`` sets; a change is audited (``tenant.updated``, the old and new values; for the
    webhook secret only that it changed). ``server_urls``: the addresses an alert webhook may not point at (default:
    ``VIBEXP_PUBLIC_URL`` and ``VIBEXP_SERVER_URLS``)."""
    changes = data.model_dump(exclude_unset=True)
    tier = Tier(changes.get("tier", tenant.tier))
    limit = changes.get("rate_limit_per_hour", tenant.rate_limit_per_hour)
    _check_limit(tier, limit)
    await _alert_settings(tenant, changes, server_urls)
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
    mark_tenant_changed(session, tenant.id)
    await session.flush()
    return tenant
