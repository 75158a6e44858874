"""Operator-only settings, read from the environment with the prefix ``VIBEXP_OPERATOR_``.

The database and everything shared with the API come from :class:`vibexp.core.config.Settings` (``VIBEXP_``);
these only tune the operator's loops and its two HTTP ports.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SERVICE_ACCOUNT_NAMESPACE", "OperatorConfig"]

#: Where a pod reads the namespace it runs in.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class OperatorConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIBEXP_OPERATOR_", extra="ignore")

    #: Where ``/healthz`` (Kopf's liveness endpoint) listens.
    health_host: str = "0.0.0.0"  # noqa: S104 - a pod's probe comes from the kubelet, not loopback
    health_port: int = Field(default=8080, ge=0, le=65535)
    #: Where Prometheus scrapes ``/metrics``; 0 turns the endpoint off.
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from another pod
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    #: How often each ApiKey's usage (last used, request count) and revocation state are read back from the
    #: database, and each tenant's counters. Status is patched only when something changed.
    sync_interval: float = Field(default=30.0, gt=0)
    #: Delay before the first retry after a temporary failure (database or Kubernetes API unreachable); each
    #: further failure of the same object doubles it, up to ``retry_max_delay``.
    retry_delay: float = Field(default=5.0, gt=0)
    retry_max_delay: float = Field(default=60.0, gt=0)
    #: Timeout of one Kubernetes API request made by the operator itself (Secrets, status).
    kube_timeout: float = Field(default=30.0, gt=0)
    #: The operator's own namespace: where a VibeXPTenant's ``spec.alerts.webhookSecretRef`` Secret is looked up
    #: when the reference names no namespace. Unset: the pod's (from its service account), else ``default``.
    namespace: str | None = Field(default=None, max_length=63)

    @property
    def own_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"
