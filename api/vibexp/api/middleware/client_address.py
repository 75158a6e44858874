"""The client address of every request, resolved once, by the outermost layer, and read by everything else.

``vibexp serve`` runs uvicorn with its proxy handling off, so ``scope["client"]`` arrives as the socket peer. The
front door (``vibexp.api.middleware.pipeline``, its first step) resolves the client (``vibexp.core.client_address``:
the peer, or ``X-Forwarded-For`` when the peer is one of ``VIBEXP_TRUSTED_PROXIES``; always an IP literal), keeps it
in the scope's state and puts it in ``scope["client"]``, so the access log names the same address. Allow-lists,
usage, the audit trail, alerts, the auth-failure, sign-in and leak-report throttles all read it with
:func:`client_address`; none reads a header or the peer itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import Scope

from vibexp.core.client_address import ClientAddressResolver, address_literal

__all__ = ["client_address", "forwarded_for", "resolve_client"]

_STATE_KEY = "vibexp.client_address"


def resolve_client(scope: Scope, resolver: ClientAddressResolver, forwarded_for: str | None) -> None:
    """Resolve the client of an HTTP or websocket ``scope`` (``forwarded_for``: every ``X-Forwarded-For`` header,
    joined in order; read only when the resolver trusts proxies) into its state and ``scope["client"]``."""
    client = scope.get("client")
    address = resolver.resolve(client[0] if client else None, forwarded_for)
    scope.setdefault("state", {})[_STATE_KEY] = address
    if client and address is not None:
        scope["client"] = (address, client[1])


def forwarded_for(scope: Scope) -> str | None:
    """Every ``X-Forwarded-For`` header, joined in order (several headers are one list, RFC 9110 section 5.3)."""
    values = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
    return ",".join(values) if values else None


def client_address(scope: Mapping[str, Any]) -> str | None:
    """The request's client address as the front door resolved it (outside it, the peer)."""
    state = scope.get("state")
    if isinstance(state, Mapping) and _STATE_KEY in state:
        resolved = state[_STATE_KEY]
        return resolved if isinstance(resolved, str) else None
    client = scope.get("client")
    return address_literal(client[0]) if client else None
