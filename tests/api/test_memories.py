"""Memories over REST, and isolation between accounts: another tenant's ids are 404 for every resource."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.direct import count_solved, through_fastapi
from helpers.factories import Account
from helpers.teams import make_person
from vibexp.core.access import Role


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


async def test_create_and_get_are_answered_directly_as_fastapi_answers_them(
    app: FastAPI,
    client: httpx.AsyncClient,
    account: Account,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``POST /memories`` with a JSON body and ``GET /memories/{id}`` skip FastAPI's dependency solver (the route
    shortcut's direct endpoints) and answer what FastAPI answers; a body FastAPI refuses is handed to FastAPI,
    replayed, for its own 422; a key without ``memories:write`` is refused either way and stores nothing."""
    reader = await make_person(session_factory, tenant_id=account.tenant.id, role=Role.member, scopes=["memories:read"])
    solved = count_solved(monkeypatch)
    good = {"content": "User prefers tabs", "tags": ["prefs"]}

    async def answers() -> list[tuple[int, Any]]:
        created = await client.post("/api/v1/memories", json=good, headers=account.headers)
        assert created.status_code == 201, created.text
        memory = created.json()
        got = await client.get(f"/api/v1/memories/{memory['id']}", headers=account.headers)
        assert got.json() == memory and got.headers["etag"] == created.headers["etag"] == '"1"'
        refused = await client.post("/api/v1/memories", json=good, headers=reader.headers)
        kept = {k: v for k, v in memory.items() if k not in ("id", "created_at", "updated_at")}
        return [(created.status_code, kept), (refused.status_code, refused.json())]

    direct = await answers()
    assert solved == []
    assert direct[1][0] == 403
    invalid = await client.post("/api/v1/memories", json={"tags": "no"}, headers=account.headers)
    not_json = await client.post(
        "/api/v1/memories", content=b"{", headers=account.headers | {"Content-Type": "application/json"}
    )
    # Both went to FastAPI, which read them from the replay: the invalid one through the solver, the bad JSON
    # refused before it.
    assert len(solved) == 1
    with through_fastapi(app):
        assert await answers() == direct
        assert (await client.post("/api/v1/memories", json={"tags": "no"}, headers=account.headers)).json() == (
            invalid.json()
        )
        again = await client.post(
            "/api/v1/memories", content=b"{", headers=account.headers | {"Content-Type": "application/json"}
        )
        assert again.json() == not_json.json()
    assert (invalid.status_code, not_json.status_code) == (422, 400)
    listed = await client.get("/api/v1/memories", headers=account.headers)
    assert len(listed.json()["items"]) == 2  # one per round: the refused requests stored nothing


#: Bodies at the edges of JSON and of the create schema: the direct create parses them with pydantic-core in one
#: pass (``model_validate_json``), FastAPI with ``json.loads`` and then the model. Each must be answered alike.
EDGE_BODIES: list[bytes] = [
    rb'{"content": "a\ud800b"}',  # an escaped lone surrogate: json.loads reads it, the schema refuses it
    rb'{"content": "\ud83d\ude00 pair"}',  # an escaped surrogate pair: one character
    b'{"content": "\xed\xa0\x80"}',  # a surrogate encoded in the bytes: not UTF-8
    rb'{"content": "nul\u0000"}',
    b'{"content": "first", "content": "second"}',  # the last of duplicate keys
    b'{"content": NaN}',
    b'\xef\xbb\xbf{"content": "after a BOM"}',  # json.loads reads it, pydantic-core does not: FastAPI decides
    '{"content": "utf-16"}'.encode("utf-16"),  # likewise
    b' {"content": "spaced", "tags": [" t "], "project": null}\n',
    b'{"content": "a\tb"}',  # a raw control character in a string
    b'{"content": "x", "extra": 1}',
    b'{"content": "x", "tags": [1]}',
    b'{"content": "x", "project": "Upper"}',
    b'{"content": 1e400}',
    b'{"content": "x"} {}',
    b"[]",
]


async def test_edge_bodies_are_answered_directly_or_by_fastapi_alike(
    app: FastAPI, client: httpx.AsyncClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the direct create's one-pass parse accepts, FastAPI accepts to the same stored object, and whatever
    it refuses FastAPI answers (a 422 or 400 as always, or the object: a BOM, UTF-16); nothing refused is stored."""
    headers = account.headers | {"Content-Type": "application/json"}
    solved = count_solved(monkeypatch)

    async def answer(body: bytes) -> tuple[int, Any]:
        response = await client.post("/api/v1/memories", content=body, headers=headers)
        found = response.json()
        if response.status_code == 201:
            found = {k: v for k, v in found.items() if k not in ("id", "created_at", "updated_at")}
        return response.status_code, found

    direct, by_fastapi = [], []
    for body in EDGE_BODIES:
        before = len(solved)
        direct.append(await answer(body))
        by_fastapi.append(len(solved) > before)
    with through_fastapi(app):
        assert [await answer(body) for body in EDGE_BODIES] == direct
    stored = [found["content"] for status, found in direct if status == 201]
    assert stored == ["\U0001f600 pair", "second", "after a BOM", "utf-16", "spaced", "x"]
    # The bodies pydantic-core reads and the schema accepts were stored directly; the BOM and UTF-16 ones (and the
    # invalid ones) went to FastAPI's solver; bad JSON was refused before it.
    answered_directly = [body for body, solver in zip(EDGE_BODIES, by_fastapi, strict=True) if not solver]
    assert [
        body
        for body, (status, _) in zip(EDGE_BODIES, direct, strict=True)
        if status == 201 and body in answered_directly
    ] == [EDGE_BODIES[1], EDGE_BODIES[4], EDGE_BODIES[8], EDGE_BODIES[10]]
    assert by_fastapi[6] and by_fastapi[7]
    listed = await client.get("/api/v1/memories", params={"limit": 100}, headers=account.headers)
    assert len(listed.json()["items"]) == 2 * len(stored)  # once per round, and nothing refused
