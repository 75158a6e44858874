"""The settings every VibeXP process shares (the API, the operator, the CLI), read from the environment (prefix
``VIBEXP_``): the database and its pool, the usage log, the key cache.

The API server's own settings (MCP hosts, cookies, metrics port, body limit) are ``vibexp.api.settings.ApiSettings``,
a subclass; the operator's are ``vibexp.operator.settings.OperatorConfig``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vibexp.core import cidrs

__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_SECRET_KEY", "Environment", "Settings", "get_settings"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./vibexp.db"
DEFAULT_SECRET_KEY = "insecure-development-secret-change-me"  # noqa: S105 - the API refuses it in production


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIBEXP_", extra="ignore")

    environment: Environment = Environment.development
    database_url: str = DEFAULT_DATABASE_URL
    #: The server key: signs the dashboard's sessions (the API refuses the default in production) and encrypts the
    #: tenants' webhook secrets at rest (``vibexp.core.secret_box``), so it must be the same in every process
    #: (API replicas, operator, CLI, migration Job).
    secret_key: str = DEFAULT_SECRET_KEY
    #: Run migrations at start-up. Defaults to on for the embedded SQLite database only; in Kubernetes a Helm hook
    #: Job runs ``vibexp db upgrade`` before the API starts.
    auto_migrate: bool | None = None
    log_level: str = "info"
    #: Database connections each process keeps open, and how many more it may open under a burst. Keep the pool at
    #: least as large as the requests one process serves at once: a connection opened beyond it is closed again on
    #: return, and reopening one (TCP, SCRAM; for SQLite a thread, a file and its PRAGMAs) costs more than the
    #: query it serves. Both backends (SQLite ignored them before #13).
    database_pool_size: int = Field(default=20, ge=1, le=500)
    database_max_overflow: int = Field(default=20, ge=0, le=500)
    #: PostgreSQL connections each process may hold for its hot one-statement reads and inserts (a prompt or
    #: artifact by id, storing a memory), taken from the pool above when needed and kept, so those requests skip the
    #: pool's checkout (``vibexp.core.pg_direct``). As many are held as such statements ran at once (up to this);
    #: more at once use the pool as before. Like the pool, about the requests one process serves at once; never
    #: more than the pool size less one (they count against it). 0 turns it off. SQLite ignores it.
    database_hot_connections: int = Field(default=16, ge=0, le=500)

    #: How often buffered usage is written to the database (seconds).
    usage_flush_interval: float = Field(default=0.5, gt=0, le=1.0)
    #: How long the per-key action log is kept (days).
    usage_retention_days: int = Field(default=30, ge=1)
    #: How long the audit trail is kept (days); older events are deleted with the usage log's pruning.
    audit_retention_days: int = Field(default=365, ge=1)
    #: How often each process looks for keys and tenants changed by other processes (seconds).
    #: Revocation reaches every replica within this interval plus one query.
    revocation_poll_interval: float = Field(default=0.25, gt=0, le=0.9)
    #: How long a verified key may be served from the in-process cache before it is read again.
    key_cache_ttl: float = Field(default=60.0, gt=0)
    #: How long an invitation link to join an account stays valid (``VIBEXP_INVITATION_TTL_DAYS``).
    invitation_ttl_days: int = Field(default=7, gt=0, le=365)
    #: How often each process applies the tenants' key policy (revokes keys past ``revoke_unused_after_days``) and
    #: refreshes the key-expiry gauge (seconds; ``vibexp.core.keys.policy``).
    key_policy_interval: float = Field(default=60.0, gt=0, le=3600)
    #: Seconds between two runs of the OAuth purge (expired codes, abandoned consents, unused registered clients:
    #: ``vibexp.core.oauth.purge``), on every process (``VIBEXP_OAUTH_PURGE_INTERVAL``).
    oauth_purge_interval: float = Field(default=600.0, gt=0, le=86400)

    # -- alert thresholds (vibexp.core.alerts.detectors); README "Alerts" lists them -------------------------------
    #: ``request_spike``: a key's requests in one minute at or above this ...
    alert_spike_per_minute: int = Field(default=600, ge=1)
    #: ... and at least this many times its usual rate per minute.
    alert_spike_factor: float = Field(default=10.0, ge=1)
    #: ``failed_auth``: this many refused attempts against one key ...
    alert_failed_auth_threshold: int = Field(default=5, ge=1)
    #: ... within this many seconds.
    alert_failed_auth_window: float = Field(default=300.0, gt=0)
    #: ``failed_auth`` alerts (and so webhooks) that may open per key, and per source address, in an hour: display
    #: prefixes are public, so anyone can raise this kind; acknowledging does not re-arm it beyond this.
    alert_failed_auth_per_hour: int = Field(default=3, ge=1, le=1000)
    #: ``new_network``: a network the key has not used for this many days counts as new.
    alert_new_network_days: int = Field(default=30, ge=1)
    #: ``new_country``: a registered country the key has not used for this many days counts as new.
    alert_new_country_days: int = Field(default=30, ge=1)
    #: The address people reach this server at (``vibexp serve`` sets it from --host/--port): dashboard links in the
    #: log, and alert webhooks may not point at it (``vibexp.core.alerts.targets``).
    public_url: str = "http://127.0.0.1:8000"
    #: Other addresses this server answers at (comma-separated: its Service, its Ingress host ...); alert webhooks
    #: may not point at any of them either.
    server_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The other replicas' own addresses (comma-separated URLs, e.g. each pod's, or a headless Service's name with
    #: the API port): alert webhooks may not point at any of them, by name or by any address the name resolves to.
    replica_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Deliver alert webhooks to loopback and private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7,
    #: 127/8, ::1 ...): off by default so a tenant cannot make the server call into its own network. Link-local and
    #: metadata addresses (169.254/16, fe80::/10) stay refused (``vibexp.core.destinations``).
    webhook_allow_private: bool = False

    #: Proxies (comma-separated CIDRs) whose ``X-Forwarded-For`` names the client (``vibexp.core.client_address``);
    #: empty: the socket peer is the client. The Helm chart sets it for its Ingress path.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("server_urls", "replica_urls", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated_urls(cls, value: object) -> object:
        # Not named like ApiSettings' own validator: a subclass's method of the same name would replace this one.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_cidrs(cls, value: list[str]) -> list[str]:
        return list(cidrs.normalise(value))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


@lru_cache
def get_settings() -> Settings:
    return Settings()
