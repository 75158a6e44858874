"""Bad input gets a clear error and loses nothing: invalid JSON, wrong types, missing fields, oversized bodies,
unicode and SQL metacharacters in every text field, NUL, path traversal in artifact addresses, wrong methods."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from helpers.api_errors import assert_error
from helpers.factories import Account

#: Emoji (incl. a ZWJ sequence), RTL scripts and an override, combining marks, CJK, and SQL/LIKE metacharacters.
NASTY = (
    "🚀 👩‍💻 مرحبا עברית \u202eevil\u202c é (e\u0301) 漢字 "
    "'; DROP TABLE prompts; -- \" OR 1=1 /* */ % _ \\ ` $1 ? :name \\x27 \t\r\n end"
)


def _nasty(suffix: str) -> str:
    return f"{NASTY} [{suffix}]"


# -- malformed bodies ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"{", b"not json", b'{"name": "x",}', b"\xff\xfe", b'{"name": "x"} trailing'])
async def test_invalid_json_is_400(client: httpx.AsyncClient, account: Account, body: bytes) -> None:
    response = await client.post(
        "/api/v1/prompts", content=body, headers={**account.headers, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/prompts", {"name": 123, "content": "x"}, "name"),
        ("/api/v1/prompts", {"name": "ok", "content": ["x"]}, "content"),
        ("/api/v1/prompts", {"name": "ok", "content": "x", "tags": "not-a-list"}, "tags"),
        ("/api/v1/memories", {"content": {"nested": True}}, "content"),
        ("/api/v1/memories", {"content": "x", "tags": [1, 2]}, "tags"),
        ("/api/v1/artifacts", {"project": "p", "slug": "s", "title": 5, "content": "x"}, "title"),
        ("/api/v1/api-keys", {"name": False}, "name"),
        ("/api/v1/api-keys", {"name": "k", "expires_at": "next tuesday"}, "expires_at"),
        ("/api/v1/prompts", [1, 2, 3], "body"),
        ("/api/v1/memories", "just a string", "body"),
    ],
)
async def test_wrong_types_are_422(
    client: httpx.AsyncClient, account: Account, path: str, body: Any, field: str
) -> None:
    response = await client.post(path, json=body, headers=account.headers)
    error = assert_error(response, 422, "validation_error")
    assert field in error["message"] or any(field in d["loc"] for d in error["details"]), error


@pytest.mark.parametrize(
    ("path", "body", "missing"),
    [
        ("/api/v1/prompts", {"content": "x"}, "name"),
        ("/api/v1/prompts", {"name": "x"}, "content"),
        ("/api/v1/memories", {"tags": ["a"]}, "content"),
        ("/api/v1/artifacts", {"project": "p", "title": "t", "content": "c"}, "slug"),
        ("/api/v1/api-keys", {"description": "no name"}, "name"),
    ],
)
async def test_missing_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, account: Account, path: str, body: dict[str, Any], missing: str
) -> None:
    response = await client.post(path, json=body, headers=account.headers)
    error = assert_error(response, 422, "validation_error")
    assert missing in error["message"], error
    assert error["details"][0]["type"] == "missing"


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough to exhaust a recursive parser
        b'{"content": "x", "tags": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"content": 1' + b"0" * 5_000 + b"}",  # a 5,000-digit number
        b'{"content": NaN}',
    ],
)
async def test_pathological_json_is_a_clean_4xx(client: httpx.AsyncClient, account: Account, raw: bytes) -> None:
    response = await client.post(
        "/api/v1/memories", content=raw, headers={**account.headers, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text[:500]
    assert_error(response, response.status_code)


async def test_no_body_is_422(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.post("/api/v1/prompts", headers=account.headers)
    assert_error(response, 422, "validation_error")


async def test_naive_expiry_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    # RFC 3339 needs an offset; a naive time is ambiguous (and used to reach the database as a 500).
    response = await client.post(
        "/api/v1/api-keys", json={"name": "k", "expires_at": "2099-01-01T00:00:00"}, headers=account.headers
    )
    assert_error(response, 422, "validation_error")


async def test_expiry_beyond_what_a_database_holds_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.post(
        "/api/v1/api-keys", json={"name": "k", "expires_at": "9999-12-31T23:00:00-05:00"}, headers=account.headers
    )
    assert_error(response, 422, "validation_error")


async def test_expiry_in_the_past_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.post(
        "/api/v1/api-keys", json={"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, headers=account.headers
    )
    assert_error(response, 422, "invalid_input")


# -- size limits --------------------------------------------------------------------------------------------------
TOO_BIG = 3 * 1024 * 1024  # the default limit is 2 MiB


async def test_oversized_body_with_content_length_is_413(client: httpx.AsyncClient, account: Account) -> None:
    body = json.dumps({"content": "x" * TOO_BIG}).encode()
    response = await client.post(
        "/api/v1/memories", content=body, headers={**account.headers, "Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


async def test_oversized_streamed_body_without_content_length_is_413(
    client: httpx.AsyncClient, account: Account
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"content": "'
        for _ in range(TOO_BIG // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    request = client.build_request(
        "POST", "/api/v1/memories", content=chunks(), headers={**account.headers, "Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await client.send(request)
    assert_error(response, 413, "payload_too_large")
    # Nothing was stored.
    listed = await client.get("/api/v1/memories", headers=account.headers)
    assert listed.json()["items"] == []


async def test_field_over_its_length_limit_is_422(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.post(
        "/api/v1/prompts", json={"name": "n", "content": "x" * 100_001}, headers=account.headers
    )
    error = assert_error(response, 422, "validation_error")
    assert "content" in error["message"]


async def test_too_many_tags_is_422(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.post(
        "/api/v1/memories", json={"content": "x", "tags": [f"t{i}" for i in range(33)]}, headers=account.headers
    )
    assert_error(response, 422, "validation_error")


# -- unicode and SQL metacharacters, stored and returned byte-exact -----------------------------------------------
async def _round_trip(
    client: httpx.AsyncClient, account: Account, *, create: str, read: str, body: dict[str, Any]
) -> None:
    created = await client.post(create, json=body, headers=account.headers)
    assert created.status_code == 201, created.text
    fetched = await client.get(read.format(**created.json()), headers=account.headers)
    assert fetched.status_code == 200, fetched.text
    for field, value in body.items():
        assert created.json()[field] == value, field
        assert fetched.json()[field] == value, field


async def test_prompt_text_fields_round_trip_exactly(client: httpx.AsyncClient, account: Account) -> None:
    body = {
        "name": "nasty.prompt_1-x",
        "content": _nasty("content"),
        "description": _nasty("description"),
        "tags": [_nasty("tag")[:64].strip(), "日本語", 'quote"tag', "back\\slash"],
    }
    await _round_trip(client, account, create="/api/v1/prompts", read="/api/v1/prompts/{id}", body=body)


async def test_memory_text_fields_round_trip_exactly(client: httpx.AsyncClient, account: Account) -> None:
    body = {"content": _nasty("content"), "tags": ["🚀", "עברית", "%_"]}
    await _round_trip(client, account, create="/api/v1/memories", read="/api/v1/memories/{id}", body=body)


async def test_artifact_text_fields_round_trip_exactly(client: httpx.AsyncClient, account: Account) -> None:
    body = {
        "project": "proj.1_a-b",
        "slug": "slug.v2",
        "title": _nasty("title")[:300],
        "content": _nasty("content") * 100,
        "content_type": "text/x-sql",
        "description": _nasty("description"),
        "tags": ["漢字", "' OR 1=1 --"],
    }
    await _round_trip(client, account, create="/api/v1/artifacts", read="/api/v1/artifacts/{project}/{slug}", body=body)


async def test_key_name_and_description_round_trip_exactly(client: httpx.AsyncClient, account: Account) -> None:
    body = {"name": _nasty("name")[:200], "description": _nasty("description")}
    await _round_trip(client, account, create="/api/v1/api-keys", read="/api/v1/api-keys/{id}", body=body)


async def test_updates_keep_nasty_text_exactly(client: httpx.AsyncClient, account: Account) -> None:
    created = await client.post("/api/v1/memories", json={"content": "plain"}, headers=account.headers)
    memory_id = created.json()["id"]
    updated = await client.put(
        f"/api/v1/memories/{memory_id}", json={"content": _nasty("updated")}, headers=account.headers
    )
    assert updated.status_code == 200, updated.text
    fetched = await client.get(f"/api/v1/memories/{memory_id}", headers=account.headers)
    assert fetched.json()["content"] == _nasty("updated")


async def test_search_with_sql_metacharacters_finds_the_text_literally(
    client: httpx.AsyncClient, account: Account
) -> None:
    await client.post("/api/v1/memories", json={"content": _nasty("findme")}, headers=account.headers)
    await client.post("/api/v1/memories", json={"content": "harmless"}, headers=account.headers)
    # q is read as words (letters and digits, vibexp.core.content.search): the words of each needle are in the text.
    for needle in ["'; DROP TABLE prompts; --", '" OR 1=1', "עברית", "漢字 findme", "$1 ? :name"]:
        listed = await client.get("/api/v1/memories", params={"q": needle}, headers=account.headers)
        assert listed.status_code == 200, listed.text
        assert [m["content"] for m in listed.json()["items"]] == [_nasty("findme")], needle
    for no_words in ["👩‍💻", "% _ \\ `", "/* */"]:  # no letter or digit: nothing to search for, an empty page
        listed = await client.get("/api/v1/memories", params={"q": no_words}, headers=account.headers)
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"] == [], no_words


# -- NUL and invalid unicode: refused cleanly on both backends ----------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/prompts", {"name": "nul", "content": "a\u0000b"}, "content"),
        ("/api/v1/prompts", {"name": "nul", "content": "x", "description": "\u0000"}, "description"),
        ("/api/v1/prompts", {"name": "nul\u0000", "content": "x"}, "name"),
        ("/api/v1/prompts", {"name": "nul", "content": "x", "tags": ["a\u0000"]}, "tags"),
        ("/api/v1/memories", {"content": "\u0000"}, "content"),
        ("/api/v1/memories", {"content": "x", "tags": ["\u0000"]}, "tags"),
        ("/api/v1/artifacts", {"project": "p", "slug": "s", "title": "t\u0000", "content": "c"}, "title"),
        ("/api/v1/artifacts", {"project": "p", "slug": "s", "title": "t", "content": "c\u0000"}, "content"),
        ("/api/v1/artifacts", {"project": "p\u0000", "slug": "s", "title": "t", "content": "c"}, "project"),
        ("/api/v1/api-keys", {"name": "k\u0000"}, "name"),
        ("/api/v1/api-keys", {"name": "k", "description": "\u0000"}, "description"),
    ],
)
async def test_nul_is_refused_with_422(
    client: httpx.AsyncClient, account: Account, path: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post(path, json=body, headers=account.headers)
    error = assert_error(response, 422, "validation_error")
    assert field in error["message"], error


@pytest.mark.parametrize("path", ["/api/v1/memories", "/api/v1/prompts"])
async def test_lone_surrogate_is_refused_with_422(client: httpx.AsyncClient, account: Account, path: str) -> None:
    # Valid JSON that Python's json module accepts, but no database can store.
    raw = b'{"name": "surrogate", "content": "a\\ud800b"}'
    response = await client.post(path, content=raw, headers={**account.headers, "Content-Type": "application/json"})
    assert_error(response, 422, "validation_error")


async def test_nul_in_an_update_is_refused_and_the_object_is_unchanged(
    client: httpx.AsyncClient, account: Account
) -> None:
    created = await client.post("/api/v1/memories", json={"content": "before"}, headers=account.headers)
    memory_id = created.json()["id"]
    response = await client.put(
        f"/api/v1/memories/{memory_id}", json={"content": "after\u0000"}, headers=account.headers
    )
    assert_error(response, 422, "validation_error")
    fetched = await client.get(f"/api/v1/memories/{memory_id}", headers=account.headers)
    assert fetched.json()["content"] == "before"
    assert fetched.headers["etag"] == '"1"'


@pytest.mark.parametrize("param", ["q", "tag"])
async def test_nul_in_a_query_parameter_is_422(client: httpx.AsyncClient, account: Account, param: str) -> None:
    for path in ["/api/v1/memories", "/api/v1/prompts", "/api/v1/artifacts"]:
        response = await client.get(path, params={param: "a\u0000b"}, headers=account.headers)
        assert_error(response, 422, "validation_error")


async def test_nul_in_an_id_is_404(client: httpx.AsyncClient, account: Account) -> None:
    for path in [
        "/api/v1/prompts/%00",
        "/api/v1/memories/a%00b",
        "/api/v1/artifacts/p%00/s",
        "/api/v1/artifacts/p/s%00",
        "/api/v1/api-keys/%00",
        "/api/v1/api-keys/%00/usage",
    ]:
        response = await client.get(path, headers=account.headers)
        assert_error(response, 404, "not_found")


# -- artifact addresses: no traversal -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("project", "slug"),
    [("..", "s"), ("p", ".."), ("a..b", "s"), ("p", "x..y"), ("a/b", "s"), ("p", "a/b"), ("../etc", "passwd"),
     ("p", "..%2F..%2Fetc"), (".hidden", "s"), ("P", "s"), ("p", "a\\b"), ("", "s"), ("p", "")],
)  # fmt: skip
async def test_artifact_address_with_traversal_is_refused(
    client: httpx.AsyncClient, account: Account, project: str, slug: str
) -> None:
    body = {"project": project, "slug": slug, "title": "t", "content": "c"}
    response = await client.post("/api/v1/artifacts", json=body, headers=account.headers)
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/artifacts/%2E%2E/slug",
        "/api/v1/artifacts/proj/%2E%2E",
        "/api/v1/artifacts/%2E%2E/%2E%2E",
        "/api/v1/artifacts/proj/a%2Fb",
        "/api/v1/artifacts/a%2Fb/slug",
        "/api/v1/artifacts/proj/..%2F..%2Fprompts",
        "/api/v1/artifacts/proj/slug%2F..%2F..",
    ],
)
async def test_artifact_paths_with_traversal_are_not_found(
    client: httpx.AsyncClient, account: Account, path: str
) -> None:
    await client.post(
        "/api/v1/artifacts", json={"project": "proj", "slug": "slug", "title": "t", "content": "c"},
        headers=account.headers,
    )  # fmt: skip
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, path, json={"title": "x"}, headers=account.headers)
        assert response.status_code in (404, 405, 422), (method, path, response.text)
        assert_error(response, response.status_code)
    # The real artifact is untouched.
    fetched = await client.get("/api/v1/artifacts/proj/slug", headers=account.headers)
    assert fetched.status_code == 200 and fetched.json()["title"] == "t"


# -- wrong methods ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/api/v1/prompts/{id}"),
        ("POST", "/api/v1/prompts/{id}"),
        ("DELETE", "/api/v1/prompts"),
        ("PUT", "/api/v1/memories"),
        ("PATCH", "/api/v1/artifacts/p/s"),
        ("PUT", "/api/v1/api-keys/{key_id}"),
        ("GET", "/api/v1/api-keys/{key_id}/rotate"),
        ("DELETE", "/api/v1/account"),
    ],
)
async def test_wrong_method_is_405_with_json_error(
    client: httpx.AsyncClient, account: Account, method: str, path: str
) -> None:
    created = await client.post("/api/v1/prompts", json={"name": "m", "content": "c"}, headers=account.headers)
    url = path.format(id=created.json()["id"], key_id=account.key_id)
    response = await client.request(method, url, headers=account.headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers.get("allow"), response.headers
    assert method not in response.headers["allow"]
