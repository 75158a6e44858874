"""What the dashboard's Alerts page shows: the account's alerts, each with its webhook delivery log.

(Counting open alerts for the badge and acknowledging one are ``vibexp.core.alerts.service``'s, shared with REST.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts.models import Alert, AlertKind, AlertStatus, WebhookDelivery
from vibexp.core.alerts.service import owned_by

#: Alerts raised by refused authentications against a key (the requests never reach the action log).
FAILED_AUTH_KINDS = (AlertKind.failed_auth, AlertKind.retired_key_used, AlertKind.disallowed_address)

__all__ = ["FAILED_AUTH_KINDS", "AlertWithDeliveries", "alerts_with_deliveries", "failed_authentications"]


@dataclass(frozen=True, slots=True)
class AlertWithDeliveries:
    alert: Alert
    deliveries: Sequence[WebhookDelivery]


async def alerts_with_deliveries(
    session: AsyncSession, *, tenant_id: str, owner: str | None = None, limit: int = 100
) -> list[AlertWithDeliveries]:
    """Open alerts first, then acknowledged ones, each group most recently seen first; with their delivery logs
    and their keys' owners (two queries). ``owner`` as ``service.owned_by`` reads it; ``None``: every key's."""
    open_first = case((Alert.status == AlertStatus.open.value, 0), else_=1)
    query = select(Alert).where(Alert.tenant_id == tenant_id)
    if owner is not None:
        query = query.where(owned_by(tenant_id, owner))
    alerts = (
        await session.scalars(query.order_by(open_first, Alert.last_seen_at.desc(), Alert.id.desc()).limit(limit))
    ).all()
    by_alert: dict[str, list[WebhookDelivery]] = {alert.id: [] for alert in alerts}
    if by_alert:
        deliveries = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.alert_id.in_(by_alert))
            .order_by(WebhookDelivery.created_at)
        )
        for delivery in deliveries:
            by_alert[delivery.alert_id].append(delivery)
    return [AlertWithDeliveries(alert, by_alert[alert.id]) for alert in alerts]


async def failed_authentications(
    session: AsyncSession, *, tenant_id: str, since: datetime, key_id: str | None = None
) -> int:
    """Refused authentications against the tenant's keys that its alerts noticed since ``since``: the ``count`` of
    each ``FAILED_AUTH_KINDS`` alert last seen since then (how often it was noticed while open)."""
    query = select(func.coalesce(func.sum(Alert.count), 0)).where(
        Alert.tenant_id == tenant_id,
        Alert.kind.in_([kind.value for kind in FAILED_AUTH_KINDS]),
        Alert.last_seen_at >= since,
    )
    if key_id is not None:
        query = query.where(Alert.key_id == key_id)
    return int(await session.scalar(query) or 0)
