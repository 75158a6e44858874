from __future__ import annotations

import httpx

from helpers.factories import Account


async def test_prompt_round_trip(client: httpx.AsyncClient, account: Account) -> None:
    created = await client.post(
        "/api/v1/prompts", json={"name": "review", "content": "Review {{file}}"}, headers=account.headers
    )
    assert created.status_code == 201, created.text
    fetched = await client.get(f"/api/v1/prompts/{created.json()['id']}", headers=account.headers)
    assert fetched.json()["content"] == "Review {{file}}"
    assert fetched.headers["etag"] == '"1"'
