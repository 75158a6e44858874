"""Settings read from the environment (prefix ``VIBEXP_``) with validators that refuse unsafe production set-ups."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_SECRET_KEY", "Environment", "Settings", "get_settings"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./vibexp.db"
DEFAULT_SECRET_KEY = "insecure-development-secret-change-me"  # noqa: S105 - refused in production by the validator below


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIBEXP_", extra="ignore")

    environment: Environment = Environment.development
    database_url: str = DEFAULT_DATABASE_URL
    #: Run migrations at start-up. Defaults to on for the embedded SQLite database only; in Kubernetes a Helm hook
    #: Job runs ``vibexp db upgrade`` before the API starts.
    auto_migrate: bool | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    log_level: str = "info"
    #: Database connections each process keeps open, and how many more it may open under a burst. Keep the pool at
    #: least as large as the requests one process serves at once: a connection opened beyond it is closed again on
    #: return, and reopening one (TCP, SCRAM; for SQLite a thread, a file and its PRAGMAs) costs more than the
    #: query it serves. Both backends (SQLite ignored them before #13).
    database_pool_size: int = Field(default=20, ge=1, le=500)
    database_max_overflow: int = Field(default=20, ge=0, le=500)

    #: Largest request body accepted, in bytes (413 beyond it).
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    #: How often buffered usage is written to the database (seconds).
    usage_flush_interval: float = Field(default=0.5, gt=0, le=1.0)
    #: How long the per-key action log is kept (days).
    usage_retention_days: int = Field(default=30, ge=1)
    #: How often each process looks for keys and tenants changed by other processes (seconds).
    #: Revocation reaches every replica within this interval plus one query.
    revocation_poll_interval: float = Field(default=0.25, gt=0, le=0.9)
    #: How long a verified key may be served from the in-process cache before it is read again.
    key_cache_ttl: float = Field(default=60.0, gt=0)

    #: Hosts and origins the MCP transport accepts (DNS-rebinding protection). Empty: localhost only.
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    mcp_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Also serve the Prometheus metrics on this port (besides ``/metrics`` on the main port, see below). The Helm
    #: chart scrapes this port, which no Ingress path reaches: metrics carry tenant names.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: Address the metrics port binds; all interfaces by default so the in-cluster scraper reaches the pod.
    metrics_host: str = "0.0.0.0"  # noqa: S104 - only used with metrics_port, a pod-internal port
    #: Serve ``/metrics`` on the main (HTTP) port as well. The Helm chart turns it off: its Ingress routes every
    #: path of the main port, so only the separate metrics port may answer ``/metrics`` there.
    metrics_on_main_port: bool = True

    # -- performance (issue #13) ---------------------------------------------------------------------------------
    #: Answer single stateless JSON-RPC requests with the SDK's single-exchange driver instead of building its
    #: per-request transport (``vibexp.api.mcp.fastpath``). Off: every MCP request takes the SDK's transport.
    mcp_fast_path: bool = True

    #: Sessions cookies get the Secure flag (set behind HTTPS).
    secure_cookies: bool = False
    #: Expose the unauthenticated comparison endpoint used by ``make bench``. Never in production.
    bench_endpoints: bool = False

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """Accept ``VIBEXP_MCP_ALLOWED_HOSTS=a.example,b.example`` as well as a list."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment is Environment.production:
            if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
                raise ValueError("VIBEXP_SECRET_KEY must be set to a random value of 32+ characters in production")
            if self.bench_endpoints:
                raise ValueError("VIBEXP_BENCH_ENDPOINTS must not be enabled in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


@lru_cache
def get_settings() -> Settings:
    return Settings()
