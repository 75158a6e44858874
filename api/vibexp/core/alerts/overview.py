"""What the dashboard's Alerts page shows: the account's alerts, each with its webhook delivery log.

(Counting open alerts for the badge and acknowledging one are ``vibexp.core.alerts.service``'s, shared with REST.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts.models import Alert, AlertStatus, WebhookDelivery

__all__ = ["AlertWithDeliveries", "alerts_with_deliveries"]


@dataclass(frozen=True, slots=True)
class AlertWithDeliveries:
    alert: Alert
    deliveries: Sequence[WebhookDelivery]


async def alerts_with_deliveries(
    session: AsyncSession, *, tenant_id: str, limit: int = 100
) -> list[AlertWithDeliveries]:
    """Open alerts first, then acknowledged ones, each group most recently seen first; with their delivery logs."""
    open_first = case((Alert.status == AlertStatus.open.value, 0), else_=1)
    alerts = (
        await session.scalars(
            select(Alert)
            .where(Alert.tenant_id == tenant_id)
            .order_by(open_first, Alert.last_seen_at.desc(), Alert.id.desc())
            .limit(limit)
        )
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
