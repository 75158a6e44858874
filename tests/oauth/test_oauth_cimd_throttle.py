"""Each client metadata document not in the cache is a request this server makes for whoever asks, so one client
address may cause only ``VIBEXP_OAUTH_REGISTER_LIMIT`` of them per window (counted apart from registrations);
beyond, the person gets an error page and the client ``invalid_client``, with no request made; documents already
cached, and other addresses, are unaffected (SQLite and PostgreSQL). A module of its own: it needs a small limit."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from helpers.receiver import Answer, Receiver
from helpers.tls import local_ca
from oauth.flow import REDIRECT
from vibexp.api.settings import ApiSettings
from vibexp.core.oauth.client_documents import ClientDocuments

LIMIT = 2


@pytest.fixture
def settings(shared_settings: ApiSettings) -> ApiSettings:
    return shared_settings.model_copy(update={"oauth_register_limit": LIMIT, "oauth_register_window": 600.0}, deep=True)


@pytest.fixture
def server(app: FastAPI) -> Iterator[Receiver]:
    app.state.oauth_client_documents = ClientDocuments(
        allow_private=True, verify=local_ca().client_context(), timeout=2.0
    )
    with Receiver(tls=local_ca().server_context()) as receiver:
        yield receiver


@pytest.fixture
async def other_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.78", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http


def _serve(server: Receiver, client_id: str) -> None:
    body = {"client_id": client_id, "client_name": "Doc", "redirect_uris": [REDIRECT]}
    server.script(Answer(headers={"Content-Type": "application/json"}, body=json.dumps(body).encode()))


async def _authorize(http: httpx.AsyncClient, client_id: str) -> httpx.Response:
    return await http.get("/oauth/authorize", params={"client_id": client_id, "redirect_uri": REDIRECT})


async def test_uncached_document_fetches_are_throttled_per_address(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient, server: Receiver
) -> None:
    urls = [server.url(f"/client-{n}.json", host="localhost") for n in range(LIMIT + 1)]
    for url in urls[:LIMIT]:
        _serve(server, url)
        answer = await _authorize(client, url)
        assert "Too many" not in answer.text and len(server.received) == 1

    _serve(server, urls[LIMIT])
    refused = await _authorize(client, urls[LIMIT])
    assert refused.status_code == 400 and "location" not in refused.headers
    assert "Too many new applications from this address" in html.unescape(refused.text)
    token = await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": urls[LIMIT]}
    )
    assert token.status_code == 401 and token.json()["error"] == "invalid_client"
    assert "Too many" in token.json()["error_description"]
    assert server.received == []  # nothing fetched for the refused ones

    _serve(server, urls[0])
    assert "Too many" not in (await _authorize(client, urls[0])).text  # cached: no fetch, not counted
    assert server.received == []

    _serve(server, urls[LIMIT])
    assert "Too many" not in (await _authorize(other_client, urls[LIMIT])).text  # another address
    assert len(server.received) == 1
