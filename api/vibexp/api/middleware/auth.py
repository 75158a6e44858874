"""API key authentication for ``/api/v1`` and ``/mcp``, one ASGI layer shared by REST and MCP.

For each request it: verifies the bearer key (401/403), counts the request against the tenant's hourly window
(429), adds the rate-limit headers to the response, and records the request in usage once the response is sent.
The route template (``/api/v1/prompts/{id}``), or the MCP tool an inner handler names in
``scope["state"]["vibexp.usage"]``, becomes the action; raw paths are never logged, so ids and keys stay out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api import metrics
from vibexp.api.errors import domain_error_response
from vibexp.core.clock import utcnow
from vibexp.core.errors import AccountSuspended, InvalidApiKey, RateLimited
from vibexp.core.keys.verifier import Principal
from vibexp.core.ratelimit.limiter import RateDecision
from vibexp.core.runtime import Runtime
from vibexp.core.usage.recorder import UsageEvent
from vibexp.core.usage.tool_type import detect_tool_type

__all__ = ["PRINCIPAL_STATE", "USAGE_STATE", "ApiKeyAuthMiddleware", "RequestUsage", "rate_limit_headers"]

PRINCIPAL_STATE = "vibexp.principal"
MCP_ENDPOINT = "/mcp/v1/common"
USAGE_STATE = "vibexp.usage"
#: Not counted against the hourly limit (issue 12).
ACCOUNT_STATUS_PATH = "/api/v1/account"


@dataclass(slots=True)
class RequestUsage:
    """What the usage log says about this request; inner handlers (MCP) may refine ``action`` and ``tool_type``."""

    tool_type: str
    action: str | None = None


def rate_limit_headers(decision: RateDecision) -> list[tuple[bytes, bytes]]:
    reset_in = decision.seconds_to_reset
    headers = [
        (b"x-ratelimit-limit", str(decision.limit).encode()),
        (b"x-ratelimit-remaining", str(decision.remaining).encode()),
        (b"x-ratelimit-reset", str(decision.reset_at).encode()),
        (b"x-ratelimit-used", str(decision.limit - decision.remaining).encode()),
        (b"ratelimit-policy", f'"hourly";q={decision.limit};w=3600'.encode()),
        (b"ratelimit", f'"hourly";r={decision.remaining};t={reset_in}'.encode()),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", str(decision.retry_after).encode()))
    return headers


class ApiKeyAuthMiddleware:
    def __init__(self, app: ASGIApp, *, runtime: Runtime, prefixes: Sequence[str] = ("/api/v1", "/mcp")) -> None:
        self.app = app
        self.runtime = runtime
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        authorization = user_agent = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        try:
            principal = await self.runtime.verifier.verify(authorization)
        except (InvalidApiKey, AccountSuspended) as exc:
            response = domain_error_response(exc)
            await response(scope, receive, send)
            metrics.observe_auth_failure(scope, exc, response.status_code, detect_tool_type(user_agent).value, started)
            return

        if scope["method"] == "GET" and scope["path"] == ACCOUNT_STATUS_PATH:
            # The caller's own limit status stays readable over the limit and is not counted (GitHub's /rate_limit).
            decision = await self.runtime.limiter.peek(tenant_id=principal.tenant_id, limit=principal.hourly_limit)
        else:
            decision = await self.runtime.limiter.hit(tenant_id=principal.tenant_id, limit=principal.hourly_limit)
        metrics.observe_rate_decision(principal, decision)
        usage = RequestUsage(tool_type=detect_tool_type(user_agent).value)
        state = scope.setdefault("state", {})
        state[PRINCIPAL_STATE] = principal
        state[USAGE_STATE] = usage
        extra_headers = rate_limit_headers(decision)

        if not decision.allowed:
            limited = RateLimited(
                f"Hourly limit of {decision.limit} requests reached; it resets at the top of the hour",
                limit=decision.limit,
                reset_at=decision.reset_at,
                retry_after=decision.retry_after,
            )
            response = domain_error_response(limited)
            response.raw_headers.extend(h for h in extra_headers if h[0] != b"retry-after")
            await response(scope, receive, send)
            self._record(scope, principal, usage, 429, started)
            return

        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self._record(scope, principal, usage, status, started)

    def _record(self, scope: Scope, principal: Principal, usage: RequestUsage, status: int, started: float) -> None:
        metrics.observe_request(scope, status, usage.tool_type, started, principal)
        method = scope["method"]
        if scope["path"].startswith("/mcp"):
            # One MCP endpoint; any other path under /mcp is logged as unmatched so callers cannot vary the log.
            template = MCP_ENDPOINT if scope["path"].rstrip("/") == MCP_ENDPOINT else "(unmatched)"
        else:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
        client = scope.get("client")
        self.runtime.usage.record(
            UsageEvent(
                key_id=principal.key_id,
                tenant_id=principal.tenant_id,
                at=utcnow(),
                method=method,
                route=template[:200],
                action=(usage.action or f"{method} {template}")[:200],
                status=status,
                tool_type=usage.tool_type,
                client_ip=client[0] if client else None,
            )
        )
