"""Key management with a key: create (the key shown once), get/list (never the key), revoke (next request 401,
idempotent), rotate with and without a grace period, and the usage endpoint once the recorder has flushed."""

from __future__ import annotations

import asyncio
import re

import httpx
from fastapi import FastAPI

from helpers.api_errors import assert_error
from helpers.factories import Account

KEY_RE = re.compile(r"vib_[0-9a-f]{64}")
KEY_FIELDS = {
    "id",
    "name",
    "description",
    "prefix",
    "status",
    "created_at",
    "last_used_at",
    "request_count",
    "tool_type",
}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_create_shows_the_key_once(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.post(
        "/api/v1/api-keys",
        json={"name": "Work Laptop - Cursor", "description": "for Cursor"},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) >= KEY_FIELDS
    assert KEY_RE.fullmatch(created["key"])
    assert created["prefix"] == created["key"][:12]
    assert created["status"] == "active" and created["request_count"] == 0 and created["last_used_at"] is None
    assert created["name"] == "Work Laptop - Cursor" and created["description"] == "for Cursor"

    # The new key works at once.
    assert (await client.get("/api/v1/prompts", headers=_bearer(created["key"]))).status_code == 200

    # And is never shown again: not by id, not in the list (nor anywhere in those bodies).
    fetched = await client.get(f"/api/v1/api-keys/{created['id']}", headers=account.headers)
    assert fetched.status_code == 200
    assert "key" not in fetched.json() and created["key"] not in fetched.text
    assert set(fetched.json()) >= KEY_FIELDS
    listed = await client.get("/api/v1/api-keys", headers=account.headers)
    assert created["key"] not in listed.text and account.key not in listed.text
    assert all("key" not in item for item in listed.json()["items"])
    assert {item["id"] for item in listed.json()["items"]} == {account.key_id, created["id"]}


async def test_revoke_then_the_next_request_is_401(client: httpx.AsyncClient, account: Account) -> None:
    created = (await client.post("/api/v1/api-keys", json={"name": "to revoke"}, headers=account.headers)).json()
    assert (await client.get("/api/v1/prompts", headers=_bearer(created["key"]))).status_code == 200

    revoked = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=account.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked" and revoked.json()["revoked_at"]

    refused = await client.get("/api/v1/prompts", headers=_bearer(created["key"]))
    error = assert_error(refused, 401, "invalid_api_key")
    assert "revoked" in error["message"]
    assert refused.headers["www-authenticate"].startswith("Bearer")

    # Revoked, it stays listed as revoked, with no deleted_at.
    assert revoked.json()["deleted_at"] is None
    listed = await client.get("/api/v1/api-keys", params={"status": "revoked"}, headers=account.headers)
    assert [k["id"] for k in listed.json()["items"]] == [created["id"]]
    # A second DELETE deletes the revoked key: off the list, its first revocation time kept, still refused.
    again = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=account.headers)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert again.json()["deleted_at"]
    listed = await client.get("/api/v1/api-keys", params={"status": "revoked"}, headers=account.headers)
    assert listed.json()["items"] == []
    assert_error(await client.get("/api/v1/prompts", headers=_bearer(created["key"])), 401, "invalid_api_key")
    assert_error(await client.delete(f"/api/v1/api-keys/{created['id']}", headers=account.headers), 404, "not_found")
    # The key that did the revoking is unaffected.
    assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200


async def test_a_key_can_revoke_itself(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.delete(f"/api/v1/api-keys/{account.key_id}", headers=account.headers)
    assert response.status_code == 200
    assert_error(await client.get("/api/v1/prompts", headers=account.headers), 401, "invalid_api_key")


async def test_rotate_without_grace_replaces_the_key_at_once(client: httpx.AsyncClient, account: Account) -> None:
    rotated = await client.post(f"/api/v1/api-keys/{account.key_id}/rotate", headers=account.headers)
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert KEY_RE.fullmatch(new["key"]) and new["key"] != account.key and new["id"] != account.key_id
    assert new["name"] == "test key"
    assert_error(await client.get("/api/v1/prompts", headers=account.headers), 401, "invalid_api_key")
    assert (await client.get("/api/v1/prompts", headers=_bearer(new["key"]))).status_code == 200
    old = await client.get(f"/api/v1/api-keys/{account.key_id}", headers=_bearer(new["key"]))
    assert old.json()["status"] == "revoked"


async def test_rotate_with_grace_keeps_both_until_it_ends(client: httpx.AsyncClient, account: Account) -> None:
    rotated = await client.post(
        f"/api/v1/api-keys/{account.key_id}/rotate", json={"grace_period_seconds": 2}, headers=account.headers
    )
    assert rotated.status_code == 201, rotated.text
    new_headers = _bearer(rotated.json()["key"])
    assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200
    assert (await client.get("/api/v1/prompts", headers=new_headers)).status_code == 200
    await asyncio.sleep(2.2)
    error = assert_error(await client.get("/api/v1/prompts", headers=account.headers), 401, "invalid_api_key")
    assert "expired" in error["message"]
    assert (await client.get("/api/v1/prompts", headers=new_headers)).status_code == 200


async def test_rotating_a_revoked_key_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    other = (await client.post("/api/v1/api-keys", json={"name": "x"}, headers=account.headers)).json()
    await client.delete(f"/api/v1/api-keys/{other['id']}", headers=account.headers)
    response = await client.post(f"/api/v1/api-keys/{other['id']}/rotate", headers=account.headers)
    assert_error(response, 422, "invalid_input")


async def test_invalid_grace_period_is_422(client: httpx.AsyncClient, account: Account) -> None:
    for grace in (-1, 30 * 24 * 3600 + 1, "soon"):
        response = await client.post(
            f"/api/v1/api-keys/{account.key_id}/rotate", json={"grace_period_seconds": grace}, headers=account.headers
        )
        assert_error(response, 422, "validation_error")
    # Nothing was rotated.
    assert (await client.get("/api/v1/prompts", headers=account.headers)).status_code == 200


async def test_usage_shows_actions_after_the_recorder_flushes(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    headers = {**account.headers, "User-Agent": "curl/8.5.0"}
    created = await client.post("/api/v1/memories", json={"content": "m"}, headers=headers)
    memory_id = created.json()["id"]
    await client.get(f"/api/v1/memories/{memory_id}", headers=headers)
    await client.get("/api/v1/memories/01a218c7-0feb-7eda-9259-74484cca0ebb", headers=headers)  # a 404
    await app.state.runtime.usage.flush()

    usage = await client.get(f"/api/v1/api-keys/{account.key_id}/usage", headers=headers)
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["key_id"] == account.key_id
    assert body["request_count"] >= 3 and body["last_used_at"] is not None
    assert body["tool_type"] == "curl"
    actions = [(a["method"], a["route"], a["status"]) for a in body["actions"]]
    assert ("POST", "/api/v1/memories", 201) in actions
    assert ("GET", "/api/v1/memories/{item_id}", 200) in actions
    assert ("GET", "/api/v1/memories/{item_id}", 404) in actions
    assert memory_id not in usage.text  # route templates, never raw paths with ids
    assert all(a["tool_type"] == "curl" for a in body["actions"])

    # The key's own record shows the same figures.
    key = (await client.get(f"/api/v1/api-keys/{account.key_id}", headers=headers)).json()
    assert key["request_count"] >= 3 and key["tool_type"] == "curl" and key["last_used_at"]
