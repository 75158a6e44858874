"""A tenant's alert settings, checked and normalised before ``vibexp.core.account.update_tenant`` stores them.

The settings live on the tenant row (``alert_webhook_url``, ``alert_webhook_secret``, ``working_hours``,
``auto_revoke_on``), but what makes one valid is the alerts' business: the webhook rules (``.targets``, then the
sender's own destination check, ``.destinations``), the working hours (``.hours``) and the alert kinds
(``.service.parse_auto_revoke_kinds``). The tenants stay below the alerts and never import them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vibexp.core.alerts import hours
from vibexp.core.alerts.service import parse_auto_revoke_kinds
from vibexp.core.alerts.targets import check_webhook_secret, check_webhook_url
from vibexp.core.config import get_settings
from vibexp.core.destinations import DestinationPolicy, DestinationRefused
from vibexp.core.errors import InvalidInput
from vibexp.core.tenants.models import Tenant

__all__ = ["check_alert_settings"]


def _server_urls() -> list[str]:
    """The addresses this server answers at, from the shared settings (every process reads the same variables)."""
    settings = get_settings()
    return [settings.public_url, *settings.server_urls, *settings.replica_urls]


async def check_alert_settings(tenant: Tenant, changes: dict[str, Any], server_urls: Iterable[str] | None) -> None:
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
