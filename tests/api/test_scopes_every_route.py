"""Every REST route a key can call checks the scope DESIGN.md gives it, and the table below names every route.

For each route: a key holding every scope but the one needed (and, for a read, but the write that includes it) is
refused 403 ``insufficient_scope`` with the RFC 6750 challenge naming the scope, before anything is looked up or
changed; a key holding just the needed scopes gets past the check. A route added to the OpenAPI document without a
row here fails ``test_the_table_names_every_route``, so a new endpoint cannot ship without a scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from helpers.api_errors import assert_error
from helpers.factories import Account
from vibexp.core.access import ALL_SCOPES, expand

#: Routes no key scope governs: public by design (health, metrics, the leak report endpoint, accepting an
#: invitation: its token is the credential).
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/leaked-keys"),
    ("POST", "/api/v1/members/invitations/accept"),
}


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    needs: tuple[str, ...]
    body: Any = None
    raw: bytes | None = None


CONTENT_READS = ("prompts:read", "artifacts:read", "memories:read")
CONTENT_WRITES = ("prompts:write", "artifacts:write", "memories:write")

ROUTES = (
    Route("GET", "/api/v1/prompts", ("prompts:read",)),
    Route("POST", "/api/v1/prompts", ("prompts:write",), {"name": "new-prompt", "content": "hi"}),
    Route("GET", "/api/v1/prompts/{item_id}", ("prompts:read",)),
    Route("PUT", "/api/v1/prompts/{item_id}", ("prompts:write",), {"description": "changed"}),
    Route("GET", "/api/v1/prompts/{item_id}/versions", ("prompts:read",)),
    Route("GET", "/api/v1/prompts/{item_id}/versions/{number}", ("prompts:read",)),
    Route("PUT", "/api/v1/prompts/{item_id}/labels/{label}", ("prompts:write",), {"version": 1}),
    Route("DELETE", "/api/v1/prompts/{item_id}/labels/{label}", ("prompts:write",)),
    Route("DELETE", "/api/v1/prompts/{item_id}", ("prompts:write",)),
    Route("GET", "/api/v1/artifacts", ("artifacts:read",)),
    Route(
        "POST", "/api/v1/artifacts", ("artifacts:write",), {"project": "p", "slug": "new", "title": "t", "content": "c"}
    ),
    Route("GET", "/api/v1/artifacts/{project}/{slug}", ("artifacts:read",)),
    Route("PUT", "/api/v1/artifacts/{project}/{slug}", ("artifacts:write",), {"content": "changed"}),
    Route("DELETE", "/api/v1/artifacts/{project}/{slug}", ("artifacts:write",)),
    Route("GET", "/api/v1/memories", ("memories:read",)),
    Route("POST", "/api/v1/memories", ("memories:write",), {"content": "a new fact"}),
    Route("GET", "/api/v1/memories/{item_id}", ("memories:read",)),
    Route("PUT", "/api/v1/memories/{item_id}", ("memories:write",), {"content": "changed"}),
    Route("DELETE", "/api/v1/memories/{item_id}", ("memories:write",)),
    Route("GET", "/api/v1/export", CONTENT_READS),
    Route("POST", "/api/v1/import", CONTENT_WRITES, raw=b'{"type": "memory", "content": "imported"}\n'),
    Route("GET", "/api/v1/api-keys", ("keys:read",)),
    Route("POST", "/api/v1/api-keys", ("keys:write",), {"name": "minted", "scopes": ["audit:read"]}),
    Route("GET", "/api/v1/api-keys/{key_id}", ("keys:read",)),
    Route("GET", "/api/v1/api-keys/{key_id}/usage", ("keys:read",)),
    Route("PATCH", "/api/v1/api-keys/{key_id}", ("keys:write",), {"confirm_destructive": True}),
    Route("POST", "/api/v1/api-keys/{key_id}/rotate", ("keys:write",), {}),
    Route("DELETE", "/api/v1/api-keys/{key_id}", ("keys:write",)),
    Route("GET", "/api/v1/account", ("account:read",)),
    Route("GET", "/api/v1/audit-events", ("audit:read",)),
    Route("GET", "/api/v1/alerts", ("audit:read",)),
    # A write: a read-only key must not silence the alert its own theft raised (issue 26).
    Route("POST", "/api/v1/alerts/{alert_id}/acknowledge", ("alerts:write",)),
    Route("GET", "/api/v1/members", ("members:read",)),
    Route("GET", "/api/v1/members/invitations", ("members:read",)),
    Route("POST", "/api/v1/members/invitations", ("members:write",), {"email": "probe@example.com", "role": "viewer"}),
    Route("DELETE", "/api/v1/members/invitations/{invitation_id}", ("members:write",)),
    Route("PATCH", "/api/v1/members/{user_id}", ("members:write",), {"role": "viewer"}),
    Route("DELETE", "/api/v1/members/{user_id}", ("members:write",)),
    Route("GET", "/api/v1/oauth/grants", ("keys:read",)),
    Route("GET", "/api/v1/oauth/grants/{grant_id}/usage", ("keys:read",)),
    Route("PATCH", "/api/v1/oauth/grants/{grant_id}", ("keys:write",), {"confirm_destructive": True}),
    Route("DELETE", "/api/v1/oauth/grants/{grant_id}", ("keys:write",)),
)


def _without(needs: tuple[str, ...]) -> list[str]:
    """Every concrete scope except those ``needs`` names and the writes that would grant them."""
    return [scope for scope in ALL_SCOPES if not expand([scope]) & set(needs)]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _mint(client: httpx.AsyncClient, account: Account, scopes: list[str]) -> str:
    response = await client.post("/api/v1/api-keys", json={"name": "probe", "scopes": scopes}, headers=account.headers)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


async def _objects(client: httpx.AsyncClient, account: Account) -> dict[str, str]:
    """Real objects for the path parameters, so an allowed request reaches them."""
    h = account.headers
    prompt = await client.post("/api/v1/prompts", json={"name": "scoped", "content": "hello"}, headers=h)
    await client.post("/api/v1/artifacts", json={"project": "p", "slug": "s", "title": "t", "content": "c"}, headers=h)
    memory = await client.post("/api/v1/memories", json={"content": "a fact"}, headers=h)
    victim = await client.post("/api/v1/api-keys", json={"name": "victim", "scopes": ["audit:read"]}, headers=h)
    for response in (prompt, memory, victim):
        assert response.status_code == 201, response.text
    label = await client.put(f"/api/v1/prompts/{prompt.json()['id']}/labels/production", json={"version": 1}, headers=h)
    assert label.status_code == 200, label.text
    # A member (invited and accepted) and a pending invitation.
    invite = {"email": f"member-{label.json()['version']}-{victim.json()['id']}@example.com", "role": "member"}
    joined = await client.post("/api/v1/members/invitations", json=invite, headers=h)
    accepted = await client.post(
        "/api/v1/members/invitations/accept", json={"token": joined.json()["token"], "password": "a long password"}
    )
    assert accepted.status_code == 200, accepted.text
    pending = await client.post(
        "/api/v1/members/invitations", json={"email": "later@example.com", "role": "viewer"}, headers=h
    )
    assert pending.status_code == 201, pending.text
    return {
        "user_id": accepted.json()["user_id"],
        "invitation_id": pending.json()["id"],
        "item_id": prompt.json()["id"],
        "number": "1",
        "label": "production",
        "project": "p",
        "slug": "s",
        "key_id": victim.json()["id"],
        "alert_id": "no-such-alert",
        "grant_id": "no-such-grant",  # a grant needs a person's consent in a browser: tests/oauth/test_oauth_grants.py
    }


def _path(route: Route, ids: dict[str, str]) -> str:
    values = dict(ids)
    if route.template.startswith("/api/v1/memories/"):
        values["item_id"] = ids["memory_id"]
    return route.template.format(**values)


async def _call(client: httpx.AsyncClient, route: Route, path: str, key: str) -> httpx.Response:
    headers = _bearer(key)
    if route.raw is not None:
        headers["Content-Type"] = "application/x-ndjson"
        return await client.request(route.method, path, content=route.raw, headers=headers)
    return await client.request(route.method, path, json=route.body, headers=headers)


async def test_the_table_names_every_route(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert documented - PUBLIC == {(r.method, r.template) for r in ROUTES}


async def test_a_key_without_the_scope_is_refused_on_every_route(client: httpx.AsyncClient, account: Account) -> None:
    ids = await _objects(client, account)
    memory = await client.get("/api/v1/memories", headers=account.headers)
    ids["memory_id"] = memory.json()["items"][0]["id"]
    keys: dict[tuple[str, ...], str] = {}
    for route in ROUTES:
        if route.needs not in keys:
            keys[route.needs] = await _mint(client, account, _without(route.needs))
        refused = await _call(client, route, _path(route, ids), keys[route.needs])
        error = assert_error(refused, 403, "insufficient_scope")
        scope = refused.headers["www-authenticate"].split('scope="')[1].rstrip('"')
        assert scope in route.needs, (route, scope)
        assert scope in error["message"]
    # Nothing the refused calls aimed at changed.
    assert (await client.get(f"/api/v1/prompts/{ids['item_id']}", headers=account.headers)).json()["version"] == 1
    listed = await client.get("/api/v1/memories", headers=account.headers)
    assert [m["content"] for m in listed.json()["items"]] == ["a fact"]
    victim = await client.get(f"/api/v1/api-keys/{ids['key_id']}", headers=account.headers)
    assert victim.json()["status"] == "active"


async def test_a_key_with_just_the_scope_gets_past_the_check(client: httpx.AsyncClient, account: Account) -> None:
    ids = await _objects(client, account)
    memory = await client.get("/api/v1/memories", headers=account.headers)
    ids["memory_id"] = memory.json()["items"][0]["id"]
    for route in ROUTES:
        # keys:write mints and rotates only keys no wider than itself: the minted key and the rotated one hold
        # audit:read, so the caller holds it too.
        extra = ["audit:read"] if route.needs == ("keys:write",) else []
        key = await _mint(client, account, [*route.needs, *extra])
        reads = {"alerts:write": "audit:read"}  # the audit resource's write includes its read
        assert expand([*route.needs, *extra]) == frozenset(route.needs) | set(extra) | {
            reads.get(s, s.replace(":write", ":read")) for s in route.needs
        }
        answered = await _call(client, route, _path(route, ids), key)
        assert answered.status_code not in (401, 403), (route, answered.text)
        # No such alert or grant: 404 after the check.
        if route.template not in (
            "/api/v1/alerts/{alert_id}/acknowledge",
            "/api/v1/oauth/grants/{grant_id}",
            "/api/v1/oauth/grants/{grant_id}/usage",
        ):
            assert answered.status_code < 400, (route, answered.status_code, answered.text)
