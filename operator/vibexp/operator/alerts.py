"""``VibeXPTenant.spec.alerts``: the tenant's webhook (its secret read from a Secret), auto-revocation and working
hours, as the tenant columns ``alert_webhook_url``, ``alert_webhook_secret``, ``auto_revoke_on``, ``working_hours``.

The Secret named by ``webhookSecretRef`` ({name, key, namespace?}) lives in the operator's own namespace (the
default) or in one of the tenant's ``allowedNamespaces``: a VibeXPTenant cannot make the operator read Secrets
of namespaces that have nothing to do with the tenant. A tenant without ``spec.alerts`` keeps whatever alert
settings it has (e.g. set with ``vibexp tenant update``); with ``spec.alerts``, the spec decides all four.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from vibexp.operator.runtime import OperatorRuntime

__all__ = ["SecretRefRefused", "WebhookSecretMissing", "alert_settings"]


class WebhookSecretMissing(Exception):
    """The referenced Secret (or its key) does not exist yet: retried, and the Ready condition says so."""


class SecretRefRefused(Exception):
    """The reference points at a namespace the tenant has no business in: a spec error, not retried."""


def _secret_namespace(rt: OperatorRuntime, spec: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    own = rt.config.own_namespace
    namespace = str(ref.get("namespace") or own)
    allowed = list(spec.get("allowedNamespaces") or [])
    if namespace != own and namespace not in allowed and "*" not in allowed:
        raise SecretRefRefused(
            f"spec.alerts.webhookSecretRef.namespace {namespace!r} is neither the operator's namespace ({own}) "
            "nor one of spec.allowedNamespaces"
        )
    return namespace


async def _read_secret_value(rt: OperatorRuntime, spec: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    namespace, name, key = _secret_namespace(rt, spec, ref), str(ref["name"]), str(ref["key"])
    secret = await rt.kube.read_secret(namespace, name)
    if secret is None:
        raise WebhookSecretMissing(f"webhook secret: Secret {namespace}/{name} not found; retrying")
    encoded = (secret.data or {}).get(key)
    if not encoded:
        raise WebhookSecretMissing(f"webhook secret: Secret {namespace}/{name} has no key {key!r}; retrying")
    try:
        value = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        raise SecretRefRefused(f"webhook secret: key {key!r} of Secret {namespace}/{name} is not UTF-8 text") from None
    if not value:
        raise WebhookSecretMissing(f"webhook secret: key {key!r} of Secret {namespace}/{name} is empty; retrying")
    return value


async def alert_settings(rt: OperatorRuntime, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tenant fields ``spec.alerts`` asks for, or ``None`` without ``spec.alerts`` (leave them as they are)."""
    alerts = spec.get("alerts")
    if alerts is None:
        return None
    ref = alerts.get("webhookSecretRef")
    return {
        "alert_webhook_url": alerts.get("webhookUrl") or None,
        "alert_webhook_secret": await _read_secret_value(rt, spec, ref) if ref else None,
        "working_hours": alerts.get("workingHours") or None,
        "auto_revoke_on": sorted(set(alerts.get("autoRevokeOn") or [])),
    }
