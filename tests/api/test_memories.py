"""Memories over REST, and isolation between accounts: another tenant's ids are 404 for every resource."""

from __future__ import annotations

import httpx

from helpers.api_errors import assert_error
from helpers.factories import Account


async def test_memory_lifecycle(client: httpx.AsyncClient, account: Account) -> None:
    created = await client.post(
        "/api/v1/memories", json={"content": "User prefers tabs", "tags": ["prefs"]}, headers=account.headers
    )
    assert created.status_code == 201, created.text
    memory = created.json()
    assert memory["content"] == "User prefers tabs" and memory["tags"] == ["prefs"]

    fetched = await client.get(f"/api/v1/memories/{memory['id']}", headers=account.headers)
    assert fetched.json() == memory
    updated = await client.put(f"/api/v1/memories/{memory['id']}", json={"tags": []}, headers=account.headers)
    assert updated.json()["tags"] == [] and updated.json()["content"] == "User prefers tabs"
    assert (await client.delete(f"/api/v1/memories/{memory['id']}", headers=account.headers)).status_code == 204
    assert_error(await client.get(f"/api/v1/memories/{memory['id']}", headers=account.headers), 404, "not_found")


async def test_another_tenants_objects_are_404_and_stay_intact(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    owner = account.headers
    prompt = (await client.post("/api/v1/prompts", json={"name": "p", "content": "c"}, headers=owner)).json()
    memory = (await client.post("/api/v1/memories", json={"content": "m"}, headers=owner)).json()
    artifact_body = {"project": "proj", "slug": "slug", "title": "t", "content": "c"}
    assert (await client.post("/api/v1/artifacts", json=artifact_body, headers=owner)).status_code == 201

    stranger = other_account.headers
    for path in [f"/api/v1/prompts/{prompt['id']}", f"/api/v1/memories/{memory['id']}", "/api/v1/artifacts/proj/slug"]:
        for method, body in [("GET", None), ("PUT", {"content": "stolen"}), ("DELETE", None)]:
            response = await client.request(method, path, json=body, headers=stranger)
            assert_error(response, 404, "not_found")  # never 403: existence is not revealed
            assert "x-ratelimit-limit" in response.headers
    for path in ["/api/v1/prompts", "/api/v1/memories", "/api/v1/artifacts"]:
        assert (await client.get(path, headers=stranger)).json()["items"] == []
        assert (await client.get(path, params={"q": "c"}, headers=stranger)).json()["items"] == []

    # The owner still has everything, unchanged.
    assert (await client.get(f"/api/v1/prompts/{prompt['id']}", headers=owner)).json() == prompt
    assert (await client.get(f"/api/v1/memories/{memory['id']}", headers=owner)).json() == memory
    assert (await client.get("/api/v1/artifacts/proj/slug", headers=owner)).json()["content"] == "c"


async def test_another_tenants_keys_are_404(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    key_id = account.key_id
    stranger = other_account.headers
    for method, path in [
        ("GET", f"/api/v1/api-keys/{key_id}"),
        ("GET", f"/api/v1/api-keys/{key_id}/usage"),
        ("POST", f"/api/v1/api-keys/{key_id}/rotate"),
        ("DELETE", f"/api/v1/api-keys/{key_id}"),
    ]:
        assert_error(await client.request(method, path, headers=stranger), 404, "not_found")
    listed = await client.get("/api/v1/api-keys", headers=stranger)
    assert [k["id"] for k in listed.json()["items"]] == [other_account.key_id]
    # The owner's key still works: the stranger's DELETE revoked nothing.
    assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200
