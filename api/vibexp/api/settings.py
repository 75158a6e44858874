"""The API server's own settings (MCP hosts, cookies, metrics port, body limit, bench endpoints), on top of the
settings every process shares (:class:`vibexp.core.config.Settings`: database, pool, usage, key cache).

Same ``VIBEXP_`` variables as before the split; the operator and the CLI's database commands never read these.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from vibexp.core.config import DEFAULT_SECRET_KEY, Environment, Settings

__all__ = ["DEFAULT_SECRET_KEY", "ApiSettings", "get_api_settings"]


class ApiSettings(Settings):
    # ``secret_key`` (signs the dashboard's session cookies, encrypts webhook secrets) is a shared setting
    # (vibexp.core.config): the CLI and the operator encrypt webhook secrets with it. Refused in production below.

    #: Largest request body accepted, in bytes (413 beyond it).
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

    #: Hosts and origins the MCP transport accepts (DNS-rebinding protection). Empty: localhost only.
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    mcp_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Answer single stateless JSON-RPC requests with the SDK's single-exchange driver instead of building its
    #: per-request transport (``vibexp.api.mcp.fastpath``). Off: every MCP request takes the SDK's transport.
    mcp_fast_path: bool = True
    #: Seconds a person has to answer the confirmation a ``confirm_destructive`` key's destructive MCP tool asks
    #: for (``vibexp.api.mcp.confirm``); a later answer is refused and the tool must be called again.
    mcp_confirm_timeout: float = Field(default=300.0, gt=0, le=600)
    #: Change notification streams (``subscriptions/listen`` and the handshake era's GET stream,
    #: ``vibexp.api.mcp.live``): at most this many open per key and per process (refused past either), and each
    #: ended after this many seconds with nothing to say.
    mcp_listeners_per_key: int = Field(default=8, ge=1, le=1000)
    mcp_listeners_per_process: int = Field(default=1000, ge=1, le=100_000)
    mcp_listen_idle_seconds: float = Field(default=600.0, gt=0, le=86_400)
    #: A GET event stream with nothing to say writes an SSE comment this often (proxies cut idle connections).
    mcp_stream_keepalive_seconds: float = Field(default=20.0, gt=0, le=300)

    #: Also serve the Prometheus metrics on this port (besides ``/metrics`` on the main port, see below). The Helm
    #: chart scrapes this port, which no Ingress path reaches: metrics carry tenant names.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: Address the metrics port binds; all interfaces by default so the in-cluster scraper reaches the pod.
    metrics_host: str = "0.0.0.0"  # noqa: S104 - only used with metrics_port, a pod-internal port
    #: Serve ``/metrics`` on the main (HTTP) port as well. The Helm chart turns it off: its Ingress routes every
    #: path of the main port, so only the separate metrics port may answer ``/metrics`` there.
    metrics_on_main_port: bool = True

    #: Sessions cookies get the Secure flag (set behind HTTPS).
    secure_cookies: bool = False
    #: Expose the unauthenticated comparison endpoint used by ``make bench``. Never in production.
    bench_endpoints: bool = False

    #: Largest single request header (name + value), in bytes; larger gets 431 before anything reads it.
    max_header_bytes: int = Field(default=8192, ge=1024, le=65536)
    #: Failed authentications (401s) one client address may cause per window before it gets 429 for a while.
    auth_failure_limit: int = Field(default=100, ge=1)
    auth_failure_window: float = Field(default=60.0, gt=0)
    #: Failed dashboard sign-ins per e-mail / per client address within ``sign_in_window`` seconds, counted in the
    #: database so every replica sees them.
    sign_in_per_email: int = Field(default=5, ge=1)
    sign_in_per_ip: int = Field(default=20, ge=1)
    sign_in_window: float = Field(default=900.0, gt=0)
    #: OAuth Dynamic Client Registrations (``/oauth/register``, no credential) one client address may make per clock
    #: hour, all replicas together (counted in the database); more get 429 with ``Retry-After``. The same limit
    #: counts, apart and per ``oauth_register_window`` seconds in one process, the client metadata documents not in
    #: the cache each address makes this server fetch.
    oauth_register_limit: int = Field(default=20, ge=1)
    oauth_register_window: float = Field(default=600.0, gt=0)
    #: OAuth Client ID Metadata Documents (``vibexp.core.oauth.client_documents``): accept ``http://`` client_id
    #: URLs too (development and tests only; https otherwise).
    oauth_allow_http_client_ids: bool = False
    #: Fetch client metadata documents from loopback and private addresses too (like ``webhook_allow_private``;
    #: link-local and metadata addresses and this server itself stay refused).
    oauth_allow_private_client_ids: bool = False
    #: Comma-separated domains: only client_id URLs on these hosts (or under them) are accepted, and Dynamic Client
    #: Registration is closed (registered clients are refused). Empty: any https client_id, and registration open.
    oauth_client_domains: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Print a one-time setup link at start-up while no dashboard user exists.
    first_run_setup: bool = True
    # ``public_url`` (the address people open the dashboard at) is a shared setting (vibexp.core.config): the CLI
    # and the operator check alert webhook URLs against it.
    #: Set by ``vibexp serve`` when it derived ``VIBEXP_PUBLIC_URL`` from ``--host``/``--port`` itself: OAuth's
    #: metadata then names the request's own base URL instead (``vibexp.api.oauth.urls``). Not for people to set.
    public_url_derived: bool = False

    @property
    def public_url_is_set(self) -> bool:
        """``VIBEXP_PUBLIC_URL`` was given (not defaulted, not derived by ``vibexp serve``)."""
        return "public_url" in self.model_fields_set and not self.public_url_derived

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", "oauth_client_domains", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """Accept ``VIBEXP_MCP_ALLOWED_HOSTS=a.example,b.example`` as well as a list."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> ApiSettings:
        if self.environment is Environment.production:
            if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
                raise ValueError("VIBEXP_SECRET_KEY must be set to a random value of 32+ characters in production")
            if self.bench_endpoints:
                raise ValueError("VIBEXP_BENCH_ENDPOINTS must not be enabled in production")
        return self


@lru_cache
def get_api_settings() -> ApiSettings:
    return ApiSettings()
