"""What the dashboard's Alerts page needs: the account's alerts with their delivery logs, the number still open (the
navigation badge), and acknowledging one.

Acknowledging closes the alert: the partial unique index lets the next occurrence of the same key and kind open a
new one. (``vibexp.core.alerts.service`` grows the REST side's ``acknowledge``; the two are to be merged into one.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts.models import Alert, AlertStatus, WebhookDelivery
from vibexp.core.clock import utcnow
from vibexp.core.errors import NotFound

__all__ = ["AlertWithDeliveries", "acknowledge", "alerts_with_deliveries", "count_open"]


@dataclass(frozen=True, slots=True)
class AlertWithDeliveries:
    alert: Alert
    deliveries: Sequence[WebhookDelivery]


async def count_open(session: AsyncSession, *, tenant_id: str) -> int:
    """Open alerts of the tenant: one COUNT (the dashboard shows it on every page)."""
    query = select(func.count()).where(Alert.tenant_id == tenant_id, Alert.status == AlertStatus.open.value)
    return int(await session.scalar(query) or 0)


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


async def acknowledge(session: AsyncSession, *, tenant_id: str, alert_id: str, by: str) -> Alert:
    """Mark the tenant's alert acknowledged by ``by`` (a user's e-mail); already acknowledged: unchanged.

    Another tenant's alert is ``NotFound``, like one that does not exist.
    """
    alert = await session.get(Alert, alert_id)
    if alert is None or alert.tenant_id != tenant_id:
        raise NotFound("alert not found")
    if alert.status != AlertStatus.acknowledged.value:
        alert.status = AlertStatus.acknowledged.value
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = by
        await session.flush()
    return alert
