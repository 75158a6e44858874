"""``VIBEXP_PUBLIC_URL``, when set, names the OAuth endpoints whatever Host a request carries (a forged Host cannot
point a client's discovery elsewhere); a module of its own, as it needs its own app."""

from __future__ import annotations

import httpx
import pytest

from vibexp.api.settings import ApiSettings


@pytest.fixture
def settings(shared_settings: ApiSettings) -> ApiSettings:
    return shared_settings.model_copy(update={"public_url": "https://vibexp.example.com/"}, deep=True)


async def test_public_url_wins_over_the_host_header(client: httpx.AsyncClient) -> None:
    answer = await client.get("/.well-known/oauth-protected-resource/mcp/v1/connect", headers={"Host": "evil.example"})
    assert answer.json()["resource"] == "https://vibexp.example.com/mcp/v1/connect"
    assert answer.json()["authorization_servers"] == ["https://vibexp.example.com/oauth"]
