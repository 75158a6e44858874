"""Scoped keys over REST: the new fields in the key JSON, 403 insufficient_scope with the RFC 6750 challenge on the
key, account and audit routes, no escalation through POST /api-keys, 422 for bad scopes and CIDRs, and 403
ip_not_allowed for a key used from outside its allow-list."""

from __future__ import annotations

import httpx

from helpers.api_errors import assert_error
from helpers.factories import Account


async def _mint(client: httpx.AsyncClient, account: Account, **fields: object) -> dict[str, object]:
    response = await client.post("/api/v1/api-keys", json={"name": "scoped", **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def _bearer(key: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_read_only_key_reads_but_cannot_manage_keys(client: httpx.AsyncClient, account: Account) -> None:
    created = await _mint(client, account, scopes=["read"])
    assert created["scopes"] == ["read"] and created["allowed_cidrs"] == []
    headers = _bearer(created["key"])
    assert (await client.get("/api/v1/api-keys", headers=headers)).status_code == 200  # keys:read
    assert (await client.get("/api/v1/account", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/audit-events", headers=headers)).status_code == 200
    refused = await client.post("/api/v1/api-keys", json={"name": "more"}, headers=headers)
    error = assert_error(refused, 403, "insufficient_scope")
    assert "keys:write" in error["message"]
    assert (
        refused.headers["www-authenticate"] == 'Bearer realm="vibexp", error="insufficient_scope", scope="keys:write"'
    )


async def test_a_key_without_account_or_audit_scope_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    headers = _bearer((await _mint(client, account, scopes=["memories:write"]))["key"])
    for path, scope in (("/api/v1/account", "account:read"), ("/api/v1/audit-events", "audit:read")):
        refused = await client.get(path, headers=headers)
        assert_error(refused, 403, "insufficient_scope")
        assert f'scope="{scope}"' in refused.headers["www-authenticate"]


async def test_minting_is_never_wider_than_the_caller(client: httpx.AsyncClient, account: Account) -> None:
    narrow = _bearer((await _mint(client, account, scopes=["keys:write", "memories:read"]))["key"])
    wider = await client.post("/api/v1/api-keys", json={"name": "all", "scopes": ["*"]}, headers=narrow)
    assert_error(wider, 403, "insufficient_scope")
    omitted = await client.post("/api/v1/api-keys", json={"name": "same"}, headers=narrow)
    assert omitted.status_code == 201, omitted.text
    assert omitted.json()["scopes"] == ["memories:read", "keys:read", "keys:write"]


async def test_bad_scopes_and_cidrs_are_422(client: httpx.AsyncClient, account: Account) -> None:
    for fields in (
        {"scopes": ["prompts:admin"]},
        {"scopes": ["read", "read"]},
        {"scopes": []},
        {"allowed_cidrs": ["10.0.0.1/8"]},
        {"allowed_cidrs": ["fe80::1%eth0"]},
        {"allowed_cidrs": ["nowhere"]},
    ):
        response = await client.post("/api/v1/api-keys", json={"name": "bad", **fields}, headers=account.headers)
        assert_error(response, 422, "validation_error")


async def test_a_key_outside_its_allow_list_is_refused(
    client: httpx.AsyncClient, account: Account, client_address: str
) -> None:
    # The test client's peer is ``client_address`` (10.x.y.z): a key fenced to another network is refused.
    fenced = await _mint(client, account, allowed_cidrs=["203.0.113.0/24", "2001:db8::/32"])
    assert fenced["allowed_cidrs"] == ["203.0.113.0/24", "2001:db8::/32"]
    refused = await client.get("/api/v1/prompts", headers=_bearer(fenced["key"]))
    assert_error(refused, 403, "ip_not_allowed")
    # A forged X-Forwarded-For from an untrusted peer changes nothing (no trusted proxies by default).
    forged = await client.get("/api/v1/prompts", headers={**_bearer(fenced["key"]), "X-Forwarded-For": "203.0.113.5"})
    assert_error(forged, 403, "ip_not_allowed")
    local = await _mint(client, account, allowed_cidrs=[f"{client_address}/32"])
    assert (await client.get("/api/v1/prompts", headers=_bearer(local["key"]))).status_code == 200
