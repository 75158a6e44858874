"""The discovery documents: RFC 9728 for /mcp/v1/connect, RFC 8414 for the issuer <base>/oauth, and the well-known
paths a key-only client probes (the root, /mcp/v1/common) answering 404 (SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest

from vibexp.core.access import SCOPE_NAMES


async def test_protected_resource_metadata_names_the_connect_endpoint(client: httpx.AsyncClient) -> None:
    answer = await client.get("/.well-known/oauth-protected-resource/mcp/v1/connect")
    assert answer.status_code == 200
    assert answer.json() == {
        "resource": "http://127.0.0.1/mcp/v1/connect",
        "authorization_servers": ["http://127.0.0.1/oauth"],
        "scopes_supported": [name for name in SCOPE_NAMES if name not in ("read", "*")],
        "bearer_methods_supported": ["header"],
        "resource_name": "VibeXP MCP",
    }


async def test_authorization_server_metadata_is_path_inserted(client: httpx.AsyncClient) -> None:
    answer = await client.get("/.well-known/oauth-authorization-server/oauth")
    assert answer.status_code == 200
    meta = answer.json()
    assert meta["issuer"] == "http://127.0.0.1/oauth"
    assert meta["authorization_endpoint"] == "http://127.0.0.1/oauth/authorize"
    assert meta["token_endpoint"] == "http://127.0.0.1/oauth/token"
    assert meta["registration_endpoint"] == "http://127.0.0.1/oauth/register"
    assert meta["revocation_endpoint"] == "http://127.0.0.1/oauth/revoke"
    assert meta["response_types_supported"] == ["code"]
    assert meta["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == ["none"]
    assert meta["client_id_metadata_document_supported"] is True  # https client_ids name their documents
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert "prompts:read" in meta["scopes_supported"]


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/v1/common",
        "/.well-known/oauth-authorization-server/mcp/v1/common",
        "/.well-known/openid-configuration",
    ],
)
async def test_key_only_paths_advertise_no_oauth(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_the_request_base_url_is_used_unless_public_url_is_set(client: httpx.AsyncClient) -> None:
    answer = await client.get("/.well-known/oauth-authorization-server/oauth", headers={"Host": "vibexp.example:8443"})
    assert answer.json()["issuer"] == "http://vibexp.example:8443/oauth"
