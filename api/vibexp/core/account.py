"""The account's settings: a tenant's own fields and its alert settings, changed as one.

The top of the core's layers (``[tool.importlinter]`` in pyproject.toml): a tenant update may set alert settings,
which the alerts check (``vibexp.core.alerts.settings``), and the tenants, below the alerts, store and audit
(``vibexp.core.tenants.service.apply_update``). Every adapter changes a tenant here, so none can skip the checks.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, Caller
from vibexp.core.alerts.settings import check_alert_settings
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate

__all__ = ["update_account", "update_tenant"]


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
    tenants.check_update(tenant, changes)
    await check_alert_settings(tenant, changes, server_urls)
    return await tenants.apply_update(session, tenant=tenant, changes=changes, actor=actor)


async def update_account(
    session: AsyncSession, *, caller: Caller, data: TenantUpdate, server_urls: Iterable[str] | None = None
) -> Tenant:
    """``update_tenant`` on the caller's own account, audited as ``caller.actor`` (the CLI and the operator, who
    administer the installation; no key reaches this)."""
    tenant = await tenants.get_tenant(session, tenant_id=caller.tenant_id)
    return await update_tenant(session, tenant=tenant, data=data, actor=caller.actor, server_urls=server_urls)
