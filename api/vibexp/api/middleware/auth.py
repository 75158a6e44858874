"""API key authentication for ``/api/v1`` and ``/mcp``, one ASGI layer shared by REST and MCP.

Each request goes through three steps: **authenticate** (verify the bearer key and check the client address against
its ``allowed_cidrs``: 401/403), **admit** (count the
request against the tenant's hourly window, then pass it on with the rate-limit headers, or answer 429) and
**observe** (once the response is sent: the usage log and the metrics). The route template
(``/api/v1/prompts/{id}``) is resolved once, when the request arrives, into the request's ``RequestState``; it (or
the MCP tool an inner handler names in ``state.usage``) becomes the action. Raw paths are never logged, so ids and
keys stay out. The client address is the one the front door resolved, outermost, for every request
(the socket peer, or ``X-Forwarded-For`` when the peer is one of ``VIBEXP_TRUSTED_PROXIES``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api import metrics
from vibexp.api.errors import domain_error_response, error_response
from vibexp.api.middleware.client_address import client_address
from vibexp.api.oauth.urls import CONNECT_PATH, prm_url, public_base
from vibexp.api.request_state import RequestState, RequestUsage
from vibexp.api.route_templates import route_template
from vibexp.core.cidrs import client_allowed
from vibexp.core.clock import utcnow
from vibexp.core.errors import AccountSuspended, InvalidApiKey, IpNotAllowed, RateLimited
from vibexp.core.keys.report import LEAK_REPORT_PATH
from vibexp.core.keys.verifier import Principal
from vibexp.core.members.schemas import INVITATION_ACCEPT_PATH
from vibexp.core.oauth.errors import InvalidToken
from vibexp.core.ratelimit.limiter import WINDOW_SECONDS, RateDecision
from vibexp.core.runtime import Runtime
from vibexp.core.traffic import DISALLOWED_ADDRESS, TYPO, Refusal, UsageEvent
from vibexp.core.usage.tool_type import detect_tool_type

__all__ = ["ApiKeyAuthMiddleware", "rate_limit_headers"]

#: Answered without an API key: the leaked-key report (a scanner has no key of the account it reports on) and an
#: invitation's acceptance (the invitee has no key yet; the invitation's token is the credential).
PUBLIC_PATHS = frozenset({LEAK_REPORT_PATH, INVITATION_ACCEPT_PATH})
#: The caller's own limit status: readable over the limit and not counted (GitHub's /rate_limit).
ACCOUNT_STATUS_PATH = "/api/v1/account"


def rate_limit_headers(decision: RateDecision) -> list[tuple[bytes, bytes]]:
    reset_in = decision.seconds_to_reset
    headers = [
        (b"x-ratelimit-limit", str(decision.limit).encode()),
        (b"x-ratelimit-remaining", str(decision.remaining).encode()),
        (b"x-ratelimit-reset", str(decision.reset_at).encode()),
        (b"x-ratelimit-used", str(decision.limit - decision.remaining).encode()),
        (b"ratelimit-policy", f'"hourly";q={decision.limit};w={WINDOW_SECONDS}'.encode()),
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
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes) or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        state, authorization = _open(scope)
        if scope["path"].rstrip("/") == CONNECT_PATH:  # OAuth access tokens only, never a key
            principal = await self._authenticate_token(state, authorization, scope, receive, send)
        else:
            principal = await self._authenticate(state, authorization, scope, receive, send)
        if principal is None:
            return
        decision = await self._admit(principal, scope)
        try:
            await self._respond(state, decision, scope, receive, send)
        finally:
            self._observe(state, principal, scope)

    async def _authenticate(
        self, state: RequestState, authorization: str | None, scope: Scope, receive: Receive, send: Send
    ) -> Principal | None:
        """The verified caller, or ``None`` once the 401/403 is sent (and counted)."""
        try:
            principal = await self.runtime.verifier.verify(authorization)
        except (InvalidApiKey, AccountSuspended) as exc:
            response = domain_error_response(exc)
            await response(scope, receive, send)
            state.status = response.status_code
            metrics.observe_auth_failure(state, exc)
            if isinstance(exc, InvalidApiKey) and (exc.key_id is not None or exc.typo_prefix is not None):
                self.runtime.usage.record_refusal(
                    Refusal(
                        reason=TYPO if exc.typo_prefix is not None else exc.reason,
                        at=utcnow(),
                        client_ip=state.client_ip,
                        key_id=exc.key_id,
                        tenant_id=exc.tenant_id,
                        key_prefix=exc.typo_prefix,
                    )
                )
            return None
        if principal.networks and not client_allowed(principal.networks, state.client_ip):
            await self._refuse_address(state, principal, scope, receive, send)
            return None
        state.principal = principal
        return principal

    async def _authenticate_token(
        self, state: RequestState, authorization: str | None, scope: Scope, receive: Receive, send: Send
    ) -> Principal | None:
        """The grant behind an OAuth access token, or ``None`` once the 401 (RFC 6750, pointing at the protected
        resource metadata) or the suspended account's 403 is sent."""
        try:
            principal = await self.runtime.grants.verify(authorization)
        except InvalidToken as exc:
            metadata = prm_url(public_base(scope, self.runtime.settings))  # type: ignore[arg-type]
            challenge = f'Bearer resource_metadata="{metadata}"'
            if exc.sent:
                challenge += ', error="invalid_token"'
            response = error_response(401, "invalid_token", exc.message, headers={"WWW-Authenticate": challenge})
            await response(scope, receive, send)
            state.status = response.status_code
            metrics.observe_request(state)
            return None
        except AccountSuspended as exc:
            response = domain_error_response(exc)
            await response(scope, receive, send)
            state.status = response.status_code
            metrics.observe_auth_failure(state, exc)
            return None
        state.principal = principal
        return principal

    async def _refuse_address(
        self, state: RequestState, principal: Principal, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """403 ``ip_not_allowed``, raised by the ``disallowed_address`` detector: only the real key gets this far."""
        refused = IpNotAllowed(
            f"This API key may not be used from {state.client_ip or 'an unknown address'}: "
            "it is limited to its allowed_cidrs"
        )
        response = domain_error_response(refused)
        await response(scope, receive, send)
        state.status = response.status_code
        metrics.observe_auth_failure(state, refused)
        self.runtime.usage.record_refusal(
            Refusal(
                reason=DISALLOWED_ADDRESS,
                at=utcnow(),
                client_ip=state.client_ip,
                key_id=principal.key_id,
                tenant_id=principal.tenant_id,
            )
        )

    async def _admit(self, principal: Principal, scope: Scope) -> RateDecision:
        """Count the request in the tenant's hourly window (the account status read only looks at it)."""
        limiter = self.runtime.limiter
        if scope["method"] == "GET" and scope["path"] == ACCOUNT_STATUS_PATH:
            decision = await limiter.peek(tenant_id=principal.tenant_id, limit=principal.hourly_limit)
        else:
            decision = await limiter.hit(tenant_id=principal.tenant_id, limit=principal.hourly_limit)
        metrics.observe_rate_decision(principal, decision)
        return decision

    async def _respond(
        self, state: RequestState, decision: RateDecision, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Pass the request on with the rate-limit headers, or answer 429 when the window is used up."""
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
            state.status = response.status_code
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _observe(self, state: RequestState, principal: Principal, scope: Scope) -> None:
        """After the response (or the inner app's failure): metrics, and one usage event for the credential (an API
        key, or an OAuth grant on ``/mcp/v1/connect``: recorded alike, its person as the owner)."""
        metrics.observe_request(state)
        self.runtime.usage.record(
            UsageEvent(
                key_id=principal.key_id,
                tenant_id=principal.tenant_id,
                at=utcnow(),
                method=state.method,
                route=state.route,
                action=state.usage.action or f"{state.method} {state.route}",
                status=state.status,
                tool_type=state.usage.tool_type,
                client_ip=state.client_ip,
                owner_user_id=principal.owner_user_id,
                credential=principal.credential,
            )
        )


def _open(scope: Scope) -> tuple[RequestState, str | None]:
    """The request's state (route template resolved here, once) attached to ``scope``, and its Authorization."""
    started = time.perf_counter()
    authorization = user_agent = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
    state = RequestState(
        method=scope["method"],
        route=route_template(scope),
        started=started,
        usage=RequestUsage(tool_type=detect_tool_type(user_agent).value),
        client_ip=client_address(scope),
        user_agent=user_agent,
    )
    state.attach(scope)
    return state, authorization
