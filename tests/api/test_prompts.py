"""Prompts over REST: create, read, list, update, delete; names unique per account (409)."""

from __future__ import annotations

import httpx

from helpers.api_errors import assert_error
from helpers.factories import Account


async def test_prompt_lifecycle(client: httpx.AsyncClient, account: Account) -> None:
    body = {"name": "code-review", "content": "Review {{file}}", "description": "PR helper", "tags": ["review"]}
    created = await client.post("/api/v1/prompts", json=body, headers=account.headers)
    assert created.status_code == 201, created.text
    prompt = created.json()
    assert {k: prompt[k] for k in body} == body
    assert prompt["version"] == 1 and prompt["id"] and prompt["created_at"] and prompt["updated_at"]
    assert created.headers["etag"] == '"1"'

    fetched = await client.get(f"/api/v1/prompts/{prompt['id']}", headers=account.headers)
    assert fetched.status_code == 200 and fetched.json() == prompt

    listed = await client.get("/api/v1/prompts", headers=account.headers)
    assert listed.json() == {"items": [prompt], "next_cursor": None}

    updated = await client.put(
        f"/api/v1/prompts/{prompt['id']}", json={"content": "Review {{file}} carefully"}, headers=account.headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["content"] == "Review {{file}} carefully"
    assert updated.json()["name"] == "code-review"  # fields not named keep their value
    assert updated.json()["version"] == 2 and updated.headers["etag"] == '"2"'
    assert updated.json()["updated_at"] >= prompt["updated_at"]

    deleted = await client.delete(f"/api/v1/prompts/{prompt['id']}", headers=account.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(await client.get(f"/api/v1/prompts/{prompt['id']}", headers=account.headers), 404, "not_found")
    assert_error(await client.delete(f"/api/v1/prompts/{prompt['id']}", headers=account.headers), 404, "not_found")


async def test_duplicate_prompt_name_is_409(client: httpx.AsyncClient, account: Account) -> None:
    first = await client.post("/api/v1/prompts", json={"name": "dup", "content": "a"}, headers=account.headers)
    assert first.status_code == 201
    second = await client.post("/api/v1/prompts", json={"name": "dup", "content": "b"}, headers=account.headers)
    error = assert_error(second, 409, "already_exists")
    assert "dup" in error["message"]
    # Renaming another prompt onto a taken name is refused too; renaming to its own name is fine.
    other = await client.post("/api/v1/prompts", json={"name": "other", "content": "c"}, headers=account.headers)
    other_id = other.json()["id"]
    assert_error(
        await client.put(f"/api/v1/prompts/{other_id}", json={"name": "dup"}, headers=account.headers),
        409,
        "already_exists",
    )
    same = await client.put(f"/api/v1/prompts/{other_id}", json={"name": "other"}, headers=account.headers)
    assert same.status_code == 200
    # The first prompt is untouched.
    listed = await client.get("/api/v1/prompts", headers=account.headers)
    assert sorted((p["name"], p["content"]) for p in listed.json()["items"]) == [("dup", "a"), ("other", "c")]


async def test_same_name_in_two_accounts_is_fine(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    for acc in (account, other_account):
        response = await client.post("/api/v1/prompts", json={"name": "shared", "content": "x"}, headers=acc.headers)
        assert response.status_code == 201, response.text


async def test_unknown_prompt_is_404(client: httpx.AsyncClient, account: Account) -> None:
    for path in ["/api/v1/prompts/01a218c7-0feb-7eda-9259-74484cca0ebb", "/api/v1/prompts/not-an-id"]:
        assert_error(await client.get(path, headers=account.headers), 404, "not_found")
        assert_error(await client.put(path, json={"content": "x"}, headers=account.headers), 404, "not_found")
