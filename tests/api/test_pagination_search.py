"""Cursor pagination (no duplicates, no gaps, stable under inserts), ``q=`` word search with ``%`` and ``_`` only
separating words, and the ``tag=`` filter."""

from __future__ import annotations

import httpx
import pytest

from helpers.api_errors import assert_error
from helpers.factories import Account


async def _walk(client: httpx.AsyncClient, account: Account, path: str, **params: object) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        response = await client.get(path, params=query, headers=account.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


@pytest.mark.parametrize(
    ("path", "make"),
    [
        ("/api/v1/memories", lambda i: {"content": f"memory {i}"}),
        ("/api/v1/prompts", lambda i: {"name": f"p{i}", "content": "x"}),
        ("/api/v1/artifacts", lambda i: {"project": "p", "slug": f"s{i}", "title": "t", "content": "x"}),
    ],
)
async def test_pages_cover_everything_once(client: httpx.AsyncClient, account: Account, path: str, make) -> None:  # type: ignore[no-untyped-def]
    created = []
    for i in range(8):
        response = await client.post(path, json=make(i), headers=account.headers)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    pages = await _walk(client, account, path, limit=3)
    assert [len(p) for p in pages] == [3, 3, 2]
    flat = [item for page in pages for item in page]
    assert len(flat) == len(set(flat)) == 8
    assert flat == created  # oldest first, in creation order


async def test_exact_multiple_of_the_page_size_ends_cleanly(client: httpx.AsyncClient, account: Account) -> None:
    for i in range(6):
        await client.post("/api/v1/memories", json={"content": f"m{i}"}, headers=account.headers)
    pages = await _walk(client, account, "/api/v1/memories", limit=3)
    assert [len(p) for p in pages] == [3, 3]


async def test_inserts_during_paging_neither_duplicate_nor_skip(client: httpx.AsyncClient, account: Account) -> None:
    first_ids = []
    for i in range(4):
        first_ids.append(
            (await client.post("/api/v1/memories", json={"content": f"a{i}"}, headers=account.headers)).json()["id"]
        )
    page1 = (await client.get("/api/v1/memories", params={"limit": 2}, headers=account.headers)).json()
    late = (await client.post("/api/v1/memories", json={"content": "late"}, headers=account.headers)).json()["id"]
    seen = [m["id"] for m in page1["items"]]
    cursor = page1["next_cursor"]
    while cursor:
        page = (
            await client.get("/api/v1/memories", params={"limit": 2, "cursor": cursor}, headers=account.headers)
        ).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [*first_ids, late]


@pytest.mark.parametrize("cursor", ["***", "%%%", "!", "not base64 at all", "////", "AA", "x" * 200])
async def test_invalid_cursor_is_422(client: httpx.AsyncClient, account: Account, cursor: str) -> None:
    response = await client.get("/api/v1/memories", params={"cursor": cursor}, headers=account.headers)
    error = assert_error(response, 422)
    assert "cursor" in error["message"]


@pytest.mark.parametrize("limit", [0, -1, 201, "ten"])
async def test_invalid_limit_is_422(client: httpx.AsyncClient, account: Account, limit: object) -> None:
    response = await client.get("/api/v1/memories", params={"limit": limit}, headers=account.headers)
    error = assert_error(response, 422, "validation_error")
    assert "limit" in error["message"]


async def test_search_reads_words_and_ignores_punctuation(client: httpx.AsyncClient, account: Account) -> None:
    """``q`` is a list of words (letters and digits): ``%``, ``_`` and ``\\`` only separate them (see
    vibexp.core.content.search); a ``q`` without a word finds nothing."""
    texts = ["100% sure", "100 percent", "snake_case", "snakeXcase", "back\\slash", "plain"]
    for text in texts:
        await client.post("/api/v1/memories", json={"content": text}, headers=account.headers)

    async def search(q: str) -> list[str]:
        response = await client.get("/api/v1/memories", params={"q": q}, headers=account.headers)
        assert response.status_code == 200, response.text
        return sorted(m["content"] for m in response.json()["items"])

    assert await search("%") == []
    assert await search("_") == []
    assert await search("\\") == []
    assert await search("snake_case") == ["snake_case"]  # the words "snake" and "case"
    assert await search("SNAKE") == ["snake_case"]  # case-insensitive, whole words: not "snakeXcase"
    assert await search("snakexcase") == ["snakeXcase"]
    assert await search("100") == ["100 percent", "100% sure"]
    assert await search("100%") == ["100 percent", "100% sure"]
    assert await search("slash") == ["back\\slash"]
    assert await search("nothing like it") == []


async def test_search_covers_prompt_name_description_and_content(client: httpx.AsyncClient, account: Account) -> None:
    await client.post("/api/v1/prompts", json={"name": "alpha", "content": "x"}, headers=account.headers)
    await client.post(
        "/api/v1/prompts", json={"name": "beta", "content": "x", "description": "has alpha"}, headers=account.headers
    )
    await client.post("/api/v1/prompts", json={"name": "gamma", "content": "says alpha"}, headers=account.headers)
    await client.post("/api/v1/prompts", json={"name": "delta", "content": "x"}, headers=account.headers)
    found = await client.get("/api/v1/prompts", params={"q": "alpha"}, headers=account.headers)
    assert sorted(p["name"] for p in found.json()["items"]) == ["alpha", "beta", "gamma"]


async def test_search_pages_too(client: httpx.AsyncClient, account: Account) -> None:
    for i in range(7):
        await client.post("/api/v1/memories", json={"content": f"needle {i}"}, headers=account.headers)
        await client.post("/api/v1/memories", json={"content": f"hay {i}"}, headers=account.headers)
    pages = await _walk(client, account, "/api/v1/memories", q="needle", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]


async def test_tag_filter(client: httpx.AsyncClient, account: Account) -> None:
    samples = [
        ("a and b", ["a", "b"]),
        ("b solo", ["b"]),
        ("none", []),
        ("ab", ["ab"]),  # "a" must not match "ab"
        ("unicode", ["日本", "🚀"]),
        ("quotes", ['say "hi"', "back\\slash"]),
        ("like chars", ["100%", "x_y"]),
    ]
    for content, tags in samples:
        response = await client.post(
            "/api/v1/memories", json={"content": content, "tags": tags}, headers=account.headers
        )
        assert response.status_code == 201, response.text

    async def tagged(tag: str) -> list[str]:
        response = await client.get("/api/v1/memories", params={"tag": tag}, headers=account.headers)
        assert response.status_code == 200, response.text
        return sorted(m["content"] for m in response.json()["items"])

    assert await tagged("a") == ["a and b"]
    assert await tagged("b") == ["a and b", "b solo"]
    assert await tagged("ab") == ["ab"]
    assert await tagged("日本") == ["unicode"]
    assert await tagged("🚀") == ["unicode"]
    assert await tagged('say "hi"') == ["quotes"]
    assert await tagged("back\\slash") == ["quotes"]
    assert await tagged("100%") == ["like chars"]
    assert await tagged("%") == []
    assert await tagged("x_y") == ["like chars"]
    assert await tagged("xzy") == []
    assert await tagged("missing") == []
    both = await client.get("/api/v1/memories", params={"tag": "b", "q": "solo"}, headers=account.headers)
    assert [m["content"] for m in both.json()["items"]] == ["b solo"]
