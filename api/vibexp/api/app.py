"""The FastAPI application: REST under /api/v1, MCP under /mcp/v1, health and metrics at the root."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from vibexp.api.dashboard import install_dashboard
from vibexp.api.docs import install_docs
from vibexp.api.endpoints.alerts import alerts_router
from vibexp.api.endpoints.audit import audit_router
from vibexp.api.endpoints.content import artifacts_router, memories_router, prompts_router
from vibexp.api.endpoints.health import bench_router, health_router
from vibexp.api.endpoints.keys import account_router, keys_router
from vibexp.api.endpoints.leaks import leaks_router
from vibexp.api.endpoints.members import members_router
from vibexp.api.endpoints.oauth_grants import oauth_grants_router
from vibexp.api.endpoints.prompt_versions import prompt_versions_router
from vibexp.api.endpoints.transfer import transfer_router
from vibexp.api.errors import install_error_handlers
from vibexp.api.mcp import mount_mcp
from vibexp.api.metrics import metrics_lifespan, metrics_router, observe_active_keys, observe_usage_flush
from vibexp.api.middleware.auth import ApiKeyAuthMiddleware
from vibexp.api.middleware.body_limit import BodyLimit
from vibexp.api.middleware.pipeline import FrontDoorMiddleware
from vibexp.api.oauth import install_oauth
from vibexp.api.openapi import install_openapi
from vibexp.api.route_shortcut import install_route_shortcut
from vibexp.api.settings import ApiSettings, get_api_settings
from vibexp.core.client_address import ClientAddressResolver
from vibexp.core.outage import OutageLog
from vibexp.core.ratelimit.failures import FailureThrottle
from vibexp.core.runtime import Runtime

__all__ = ["create_app"]

log = logging.getLogger(__name__)

API_DESCRIPTION = """\
Prompts, artifacts and memories for your AI tools, behind API keys.

Every `/api/v1` request needs `Authorization: Bearer vib_...`. Each account has an hourly request limit
(free 1,000, pro 10,000); every authenticated response carries `X-RateLimit-*` and `RateLimit` headers, and
over the limit the API answers 429 with `Retry-After`. Errors are `{"error": {"code", "message"}}`.
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_api_settings()
    # The webhook sender refuses URLs that reach this server (its public, server and replica URLs, and every
    # loopback address on their ports and the metrics port): an alert must not cause requests to it.
    metrics_url = [f"http://127.0.0.1:{settings.metrics_port}"] if settings.metrics_port else []
    runtime = Runtime.create(
        settings,
        on_usage_flush=observe_usage_flush,
        on_active_keys=observe_active_keys,
        own_urls=metrics_url,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await runtime.start()
            stack.push_async_callback(runtime.stop)
            for hook in app.state.lifespan_hooks:
                await stack.enter_async_context(hook())
            yield

    app = FastAPI(
        title="VibeXP API",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # served by install_docs, from this server (FastAPI's page loads a CDN)
        redoc_url=None,
    )
    app.state.runtime = runtime
    #: Context managers entered at start-up after the runtime (the MCP session manager registers one).
    app.state.lifespan_hooks = [metrics_lifespan(app, settings)]

    install_error_handlers(app)
    install_openapi(app)  # documents the rate-limit headers on every response that carries them
    install_docs(app)  # /docs: Swagger UI from the swagger-ui-bundle package, no CDN
    for router in (
        prompts_router,
        prompt_versions_router,
        artifacts_router,
        memories_router,
        transfer_router,
        keys_router,
        account_router,
        audit_router,
        alerts_router,
        leaks_router,
        members_router,
        oauth_grants_router,
    ):
        app.include_router(router)
    mount_mcp(app, runtime, settings)  # /mcp/v1/common and /mcp/v1/connect; the SDK session manager's lifespan
    install_oauth(app, settings)  # the authorization server for /mcp/v1/connect, and its metadata
    app.include_router(health_router)
    install_dashboard(app, settings)  # web dashboard at / (pages) and /static (its own assets)
    if settings.metrics_on_main_port:  # the chart turns it off and scrapes VIBEXP_METRICS_PORT only
        app.include_router(metrics_router)  # no API key: never route it through a public Ingress
    if settings.bench_endpoints:
        app.include_router(bench_router)

    install_route_shortcut(app.router)  # one regular expression picks the route, not 20 routes asked in turn

    # Outermost first at request time, all in one pass (``FrontDoorMiddleware``): the client address (resolved once,
    # read by every layer below and the access log), outage → 503, header guard (431, duplicate Authorization), body
    # limit, the failing-address throttle; then key auth/limits/usage.
    app.add_middleware(ApiKeyAuthMiddleware, runtime=runtime)
    outage = OutageLog(logging.getLogger("vibexp.api.middleware.outage"))
    outage.watch(runtime.engine)  # an outage ends when a database operation succeeds, not when any request does
    app.add_middleware(
        FrontDoorMiddleware,
        resolver=ClientAddressResolver(settings.trusted_proxies),
        outage=outage,
        body_limit=BodyLimit(max_bytes=settings.max_body_bytes),
        throttle=FailureThrottle(limit=settings.auth_failure_limit, window=settings.auth_failure_window),
        max_header_bytes=settings.max_header_bytes,
    )
    return app
