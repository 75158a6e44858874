"""Queue an alert for the tenant's webhook (the sender, ``vibexp.core.alerts.sender``, delivers it later).

Queued in the transaction that opened the alert, as a ``WebhookDelivery`` row holding the exact body that will be
signed and sent: so an alert that committed is delivered even if this process dies right after, and the request
that noticed it never waits on the receiver. The body is docs/webhooks.md's: ``kind``, ``key_id``, ``at``, ``details``
(plus the alert's ``id`` and ``tenant``, which a receiver needs to acknowledge it or tell accounts apart, and the key's
``owner``, as ``AlertRead`` shows it: ``{"user_id", "email"}`` or null for a service key, and its ``credential``:
``{"kind": "api_key" | "grant", "id", "name"}``; for a grant's alert ``key_id`` is null and ``grant_id`` is set).
"""

from __future__ import annotations

import json

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.alerts.models import Alert, WebhookDelivery
from vibexp.core.tenants.models import Tenant

__all__ = ["alert_payload", "enqueue_delivery"]


def alert_payload(alert: Alert, tenant: Tenant, credential_name: str | None = None) -> str:
    body = {
        "id": alert.id,
        "kind": alert.kind,
        "key_id": alert.key_id,
        "grant_id": alert.grant_id,
        "credential": {**alert.credential, "name": credential_name},
        "tenant": tenant.name,
        "at": alert.first_seen_at.isoformat(),
        "details": alert.details,
        "owner": alert.owner,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


async def enqueue_delivery(
    session: AsyncSession, *, tenant: Tenant, alert: Alert, credential_name: str | None = None
) -> WebhookDelivery | None:
    """A pending delivery of ``alert`` to the tenant's webhook, or ``None`` when the tenant has none; flushes.
    ``credential_name``: the key's name, or the grant's ("<client> (OAuth)")."""
    if not tenant.alert_webhook_url:
        return None
    unloaded = [name for name in ("owner_user", "grant_user") if name in inspect(alert).unloaded]
    if unloaded:  # an alert made here, not read (a read loads them with the alert)
        await session.refresh(alert, unloaded)
    payload = alert_payload(alert, tenant, credential_name)
    delivery = WebhookDelivery(tenant_id=tenant.id, alert_id=alert.id, url=tenant.alert_webhook_url, payload=payload)
    session.add(delivery)
    await session.flush()
    return delivery
