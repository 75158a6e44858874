"""Alerts as the adapters use them: reading needs ``audit:read`` (an alert is what the trail records as
``alert.raised``); acknowledging one needs ``alerts:write`` (which includes ``audit:read``), so a read-only key
cannot silence the alert its own theft raised.

``owner`` filters by the alert's key's owner, as the key list does (``keys.usecases.owner_filter``: ``me``,
``service``, an e-mail or a user id); each alert names its key's owner (``Alert.owner``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller, Scope, requires
from vibexp.core.alerts import overview, service
from vibexp.core.alerts.models import Alert, AlertKind, AlertStatus
from vibexp.core.alerts.overview import AlertWithDeliveries
from vibexp.core.keys.usecases import owner_filter
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, Page

__all__ = [
    "acknowledge",
    "acknowledge_all",
    "count_open",
    "failed_authentications",
    "list_alerts",
    "with_deliveries",
]


@requires(Scope.audit_read)
async def list_alerts(
    session: AsyncSession,
    *,
    caller: Caller,
    status: AlertStatus | None = None,
    kind: AlertKind | None = None,
    key_id: str | None = None,
    owner: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[Alert]:
    """The account's alerts, newest first; ``owner`` as the key list reads it."""
    return await service.list_alerts(
        session,
        tenant_id=caller.tenant_id,
        status=status,
        kind=kind,
        key_id=key_id,
        owner=await owner_filter(session, caller=caller, owner=owner),
        limit=limit,
        cursor=cursor,
    )


@requires(Scope.audit_read)
async def with_deliveries(
    session: AsyncSession, *, caller: Caller, owner: str | None = None
) -> list[AlertWithDeliveries]:
    """The dashboard's Alerts page: open alerts first, each with its webhook delivery log; ``owner`` as the key list
    reads it."""
    chosen = await owner_filter(session, caller=caller, owner=owner)
    return await overview.alerts_with_deliveries(session, tenant_id=caller.tenant_id, owner=chosen)


@requires(Scope.audit_read)
async def count_open(session: AsyncSession, *, caller: Caller) -> int:
    """How many of the account's alerts are open (the dashboard's badge)."""
    return await service.count_open(session, tenant_id=caller.tenant_id)


@requires(Scope.alerts_write)
async def acknowledge(session: AsyncSession, *, caller: Caller, alert_id: str) -> Alert:
    """Acknowledge an alert (idempotent); the next time its kind is noticed on the key, a new alert opens."""
    return await service.acknowledge(session, tenant_id=caller.tenant_id, alert_id=alert_id, actor=caller.actor)


@requires(Scope.alerts_write)
async def acknowledge_all(
    session: AsyncSession, *, caller: Caller, kind: AlertKind | str | None = None, owner: str | None = None
) -> int:
    """Acknowledge all the account's open alerts, or all of one kind (an unknown kind is ``InvalidInput``), or those
    on the keys of ``owner`` (as the key list reads it); how many."""
    chosen = await owner_filter(session, caller=caller, owner=owner)
    return await service.acknowledge_open(
        session, tenant_id=caller.tenant_id, actor=caller.actor, kind=kind, owner=chosen
    )


@requires(Scope.audit_read)
async def failed_authentications(
    session: AsyncSession, *, caller: Caller, since: datetime, key_id: str | None = None
) -> int:
    """Refused authentications against the account's keys since ``since``, as its alerts counted them."""
    return await overview.failed_authentications(session, tenant_id=caller.tenant_id, since=since, key_id=key_id)
