"""``POST /oauth/register`` (RFC 7591): public clients only, redirect URIs https or loopback http; each refusal an
RFC 7591 error (``invalid_redirect_uri``, ``invalid_client_metadata``) and no client made (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core.oauth.models import OAuthClient


async def test_a_public_client_registers(client: httpx.AsyncClient) -> None:
    body = {"client_name": "Claude Code", "redirect_uris": ["http://localhost:4567/callback", "https://app.example/cb"]}
    answer = await client.post("/oauth/register", json=body)
    assert answer.status_code == 201, answer.text
    registered = answer.json()
    assert registered["client_id"].startswith("vibexp-client-")
    assert registered["client_name"] == "Claude Code"
    assert registered["redirect_uris"] == body["redirect_uris"]
    assert registered["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in registered
    assert answer.headers["cache-control"] == "no-store"


async def test_a_nameless_client_is_named_after_its_redirect_host(client: httpx.AsyncClient) -> None:
    answer = await client.post("/oauth/register", json={"redirect_uris": ["https://tool.example/cb"]})
    assert answer.status_code == 201
    assert answer.json()["client_name"] == "tool.example"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"redirect_uris": ["http://tool.example/cb"]}, "invalid_redirect_uri"),  # http, not loopback
        ({"redirect_uris": ["https://tool.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://user:pw@tool.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1:notaport/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": "https://tool.example/cb"}, "invalid_redirect_uri"),
        ({"redirect_uris": [f"https://tool.example/{i}" for i in range(11)]}, "invalid_redirect_uri"),
        ({"client_name": "x"}, "invalid_redirect_uri"),
        (
            {"redirect_uris": ["https://tool.example/cb"], "token_endpoint_auth_method": "client_secret_basic"},
            "invalid_client_metadata",
        ),
        (
            {"redirect_uris": ["https://tool.example/cb"], "grant_types": ["client_credentials"]},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": ["https://tool.example/cb"], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://tool.example/cb"], "client_name": ""}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://tool.example/cb"], "client_name": "a\u0000b"}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://tool.example/cb"], "client_name": "n" * 201}, "invalid_client_metadata"),
        (["https://tool.example/cb"], "invalid_client_metadata"),
    ],
)
async def test_bad_registrations_are_refused(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession], body: Any, error: str
) -> None:
    async with session_factory() as db:
        before = await db.scalar(select(func.count()).select_from(OAuthClient))
    answer = await client.post("/oauth/register", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error
    assert answer.json()["error_description"]
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(OAuthClient)) == before


async def test_a_body_that_is_not_json_is_invalid_client_metadata(client: httpx.AsyncClient) -> None:
    answer = await client.post("/oauth/register", content=b"{nope", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_client_metadata"
