"""The Client ID Metadata Document settings as a server reads them (SQLite and PostgreSQL):
``VIBEXP_OAUTH_CLIENT_DOMAINS`` closes Dynamic Client Registration (the metadata names no registration endpoint,
``/oauth/register`` answers 403) and refuses a client_id URL elsewhere before any request; without it, metadata
documents and registration are both offered."""

from __future__ import annotations

import html

import httpx
import pytest

from vibexp.api.settings import ApiSettings


@pytest.fixture
def settings(shared_settings: ApiSettings) -> ApiSettings:
    return shared_settings.model_copy(update={"oauth_client_domains": ["claude.ai", "example.com"]}, deep=True)


async def test_client_domains_close_registration(client: httpx.AsyncClient) -> None:
    meta = (await client.get("/.well-known/oauth-authorization-server/oauth")).json()
    assert meta["client_id_metadata_document_supported"] is True
    assert "registration_endpoint" not in meta

    refused = await client.post("/oauth/register", json={"client_name": "t", "redirect_uris": ["http://127.0.0.1/cb"]})
    assert refused.status_code == 403
    assert refused.json()["error"] == "invalid_client_metadata"
    assert "client_id" not in refused.json()


async def test_client_domains_refuse_other_hosts_before_fetching(client: httpx.AsyncClient) -> None:
    page = await client.get("/oauth/authorize", params={"client_id": "https://203.0.113.9/client.json"})
    assert page.status_code == 400 and "location" not in page.headers
    assert "accepts applications only from claude.ai, example.com; 203.0.113.9 is not one" in html.unescape(page.text)
    token = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "https://evil.example/client.json"},
    )
    assert token.status_code == 401 and token.json()["error"] == "invalid_client"


def test_client_domains_are_comma_separated_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEXP_OAUTH_CLIENT_DOMAINS", " claude.ai, example.com ,")
    monkeypatch.setenv("VIBEXP_OAUTH_ALLOW_PRIVATE_CLIENT_IDS", "true")
    configured = ApiSettings()
    assert configured.oauth_client_domains == ["claude.ai", "example.com"]
    assert configured.oauth_allow_private_client_ids is True
    assert configured.oauth_allow_http_client_ids is False
