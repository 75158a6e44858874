"""429 for a client address that keeps sending keys the API refuses (``vibexp.core.ratelimit.failures``).

Sits in front of ``ApiKeyAuthMiddleware`` and watches its answers: each 401 counts as a failure of the client
address (``ClientAddressMiddleware``: the socket peer, or the address a trusted proxy forwarded, so behind a proxy
one client's garbage keys never lock out the others behind it). Once an address is over
its budget, its requests under ``/api/v1`` and ``/mcp`` get ``429 rate_limited`` with ``Retry-After`` before any key
is parsed or looked up.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibexp.api.errors import error_response
from vibexp.api.middleware.client_address import client_address
from vibexp.core.ratelimit.failures import FailureThrottle

__all__ = ["AuthFailureThrottleMiddleware"]


class AuthFailureThrottleMiddleware:
    def __init__(
        self, app: ASGIApp, *, throttle: FailureThrottle, prefixes: Sequence[str] = ("/api/v1", "/mcp")
    ) -> None:
        self.app = app
        self.throttle = throttle
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        address = client_address(scope) or "unknown"
        wait = self.throttle.retry_after(address)
        if wait:
            response = error_response(
                429,
                "rate_limited",
                f"Too many requests with invalid API keys from this address; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
            await response(scope, receive, send)
            return

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.throttle.failed(address)
            await send(message)

        await self.app(scope, receive, watching_send)
