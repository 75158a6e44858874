"""429 for a client address that keeps sending keys the API refuses (``vibexp.core.ratelimit.failures``).

A step of the front door (``vibexp.api.middleware.pipeline``), just before ``ApiKeyAuthMiddleware``, whose answers
it watches: each 401 counts as a failure of the client address (the socket peer, or the address a trusted proxy
forwarded, so behind a proxy one client's garbage keys never lock out the others behind it). Once an address is
over its budget, its requests under ``/api/v1`` and ``/mcp`` get ``429 rate_limited`` with ``Retry-After`` before any
key is parsed or looked up.
"""

from __future__ import annotations

from starlette.responses import Response

from vibexp.api.errors import error_response
from vibexp.core.ratelimit.failures import FailureThrottle

__all__ = ["THROTTLED_PREFIXES", "throttled_response"]

#: The paths whose 401s count, and that an address over its budget may not reach.
THROTTLED_PREFIXES = ("/api/v1", "/mcp")


def throttled_response(throttle: FailureThrottle, address: str) -> Response | None:
    """The 429 for an address over its budget of refused keys, or ``None``."""
    wait = throttle.retry_after(address)
    if not wait:
        return None
    return error_response(
        429,
        "rate_limited",
        f"Too many requests with invalid API keys from this address; retry in {wait} s",
        headers={"Retry-After": str(wait)},
    )
