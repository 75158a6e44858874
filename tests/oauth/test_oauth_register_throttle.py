"""``/oauth/register`` takes no credential, so one client address may register only so many clients per clock hour
(``VIBEXP_OAUTH_REGISTER_LIMIT``, counted in the database: across replicas, see ``test_oauth_grants_extras_live``):
beyond, 429 with ``Retry-After`` and no client made; another address is unaffected. A module of its own: it needs
an app with a small limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from vibexp.api.settings import ApiSettings

BODY = {"client_name": "tool", "redirect_uris": ["http://127.0.0.1:9/cb"]}


@pytest.fixture
def settings(shared_settings: ApiSettings) -> ApiSettings:
    return shared_settings.model_copy(update={"oauth_register_limit": 3, "oauth_register_window": 600.0}, deep=True)


@pytest.fixture
async def other_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.77", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http


async def test_registrations_are_throttled_per_address(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    for _ in range(3):
        assert (await client.post("/oauth/register", json=BODY)).status_code == 201
    refused = await client.post("/oauth/register", json=BODY)
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_requests"
    assert 0 < int(refused.headers["retry-after"]) <= 3600 + 30  # the hour's end, and a little jitter
    assert "at most 3 an hour" in refused.json()["error_description"]
    assert (await other_client.post("/oauth/register", json=BODY)).status_code == 201
