"""Where the authorization server and the protected resource live, as absolute URLs.

The base is ``VIBEXP_PUBLIC_URL`` when it was set, else the request's own scheme and ``Host`` (``vibexp serve``
fills ``VIBEXP_PUBLIC_URL`` from ``--host``/``--port`` when it is unset; that derived value does not count as set,
so behind a proxy the Host the client used wins). Behind a TLS-terminating proxy set ``VIBEXP_PUBLIC_URL``: the
request's scheme is the proxy's hop, not the client's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vibexp.api.mcp.mount import CONNECT_ENDPOINT
from vibexp.api.settings import ApiSettings

__all__ = [
    "AS_METADATA_PATH",
    "CONNECT_PATH",
    "ISSUER_PATH",
    "PRM_PATH",
    "authorization_server_metadata",
    "issuer",
    "prm_url",
    "protected_resource_metadata",
    "public_base",
    "resource_url",
]

#: The MCP endpoint that takes OAuth access tokens (and nothing else).
CONNECT_PATH = CONNECT_ENDPOINT
ISSUER_PATH = "/oauth"
#: RFC 9728: the resource's path inserted after the well-known prefix.
PRM_PATH = "/.well-known/oauth-protected-resource" + CONNECT_PATH
#: RFC 8414: the issuer's path inserted after the well-known prefix (the root stays 404).
AS_METADATA_PATH = "/.well-known/oauth-authorization-server" + ISSUER_PATH


def public_base(scope: Mapping[str, Any], settings: ApiSettings) -> str:
    if settings.public_url_is_set:
        return settings.public_url.rstrip("/")
    host = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return f"{scheme}://{host}"


def issuer(base: str) -> str:
    return base + ISSUER_PATH


def resource_url(base: str) -> str:
    return base + CONNECT_PATH


def prm_url(base: str) -> str:
    return base + PRM_PATH


def protected_resource_metadata(base: str, scopes: list[str]) -> dict[str, Any]:
    return {
        "resource": resource_url(base),
        "authorization_servers": [issuer(base)],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": "VibeXP MCP",
    }


def authorization_server_metadata(base: str, scopes: list[str], *, registration: bool = True) -> dict[str, Any]:
    """``registration``: Dynamic Client Registration is open (closed while ``VIBEXP_OAUTH_CLIENT_DOMAINS`` is
    set: then the metadata names no ``registration_endpoint``)."""
    metadata: dict[str, Any] = {
        "issuer": issuer(base),
        "authorization_endpoint": base + "/oauth/authorize",
        "token_endpoint": base + "/oauth/token",
        "registration_endpoint": base + "/oauth/register",
        "revocation_endpoint": base + "/oauth/revoke",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        # An https client_id names its metadata document (vibexp.core.oauth.client_documents).
        "client_id_metadata_document_supported": True,
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": scopes,
    }
    if not registration:
        del metadata["registration_endpoint"]
    return metadata
