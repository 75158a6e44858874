"""What one guarded request (``/api/v1``, ``/mcp``) carries from layer to layer, in one typed object.

``ApiKeyAuthMiddleware`` opens it when the request arrives (the route template, resolved once, before any inner app
runs), fills in the verified ``Principal``, and reads it back after the response for the usage log and the metrics.
REST dependencies and MCP handlers find it with :func:`request_state`; MCP refines ``usage`` (the tool called, the
client that called it). It lives in the ASGI scope's ``state`` under one key, so nothing else in the scope
(Starlette's lifespan state, ``request.state`` attributes) can collide with it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from vibexp.core.access import Caller
from vibexp.core.errors import AuthFailure, InvalidApiKey
from vibexp.core.keys.verifier import Principal

__all__ = ["RequestState", "RequestUsage", "request_state"]

_STATE_KEY = "vibexp.request"


@dataclass(slots=True)
class RequestUsage:
    """What the usage log says about this request; inner handlers (MCP) may refine ``action`` and ``tool_type``."""

    tool_type: str
    action: str | None = None


@dataclass(slots=True)
class RequestState:
    method: str
    #: The route template (``/api/v1/prompts/{item_id}``) or ``(unmatched)``: the same value in usage and metrics.
    route: str
    #: ``time.perf_counter()`` when the request reached the API-key layer.
    started: float
    usage: RequestUsage
    #: The client's address: the socket peer, or X-Forwarded-For from a trusted proxy (``core.client_address``).
    client_ip: str | None = None
    #: The User-Agent header, read in the same pass over the headers as the key.
    user_agent: str | None = None
    #: Set once the key is verified; ``None`` on a refused (401/403) request.
    principal: Principal | None = None
    #: The response status, once it started (500 if the inner app failed before sending one).
    status: int = 500

    def attach(self, scope: MutableMapping[str, Any]) -> None:
        scope.setdefault("state", {})[_STATE_KEY] = self

    def caller(self) -> Caller:
        """The request's ``Caller``, for the REST and MCP edges: the verified key (scopes and audit name cached with
        it) with the address and user agent this layer read once."""
        if self.principal is None:  # only if a route were mounted outside the middleware's prefixes
            raise InvalidApiKey("Missing API key", reason=AuthFailure.missing)
        return self.principal.caller(client_ip=self.client_ip, user_agent=self.user_agent)


def request_state(scope: Mapping[str, Any]) -> RequestState | None:
    """The request's state, or ``None`` outside the API-key layer's prefixes."""
    state = scope.get("state")
    found = state.get(_STATE_KEY) if isinstance(state, Mapping) else None
    return found if isinstance(found, RequestState) else None
