"""Optimistic concurrency: every read and write carries ``ETag``; ``If-Match`` with a stale tag is 412."""

from __future__ import annotations

import httpx
import pytest

from helpers.api_errors import assert_error
from helpers.factories import Account

RESOURCES = [
    ("/api/v1/prompts", {"name": "etag", "content": "v1"}, "/api/v1/prompts/{id}"),
    ("/api/v1/memories", {"content": "v1"}, "/api/v1/memories/{id}"),
    ("/api/v1/artifacts", {"project": "p", "slug": "s", "title": "t", "content": "v1"}, "/api/v1/artifacts/p/s"),
]


@pytest.mark.parametrize(("create", "body", "item"), RESOURCES)
async def test_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, account: Account, create: str, body: dict[str, str], item: str
) -> None:
    created = await client.post(create, json=body, headers=account.headers)
    url = item.format(**created.json())
    etag_v1 = created.headers["etag"]
    assert etag_v1 == '"1"'
    assert (await client.get(url, headers=account.headers)).headers["etag"] == etag_v1

    # A writer that read v1 updates with the matching tag: fine, the tag moves on.
    first = await client.put(url, json={"content": "v2"}, headers={**account.headers, "If-Match": etag_v1})
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'

    # A second writer still holding v1 is refused and the object keeps v2.
    stale = await client.put(url, json={"content": "lost"}, headers={**account.headers, "If-Match": etag_v1})
    error = assert_error(stale, 412, "precondition_failed")
    assert "changed" in error["message"]
    current = await client.get(url, headers=account.headers)
    assert current.json()["content"] == "v2" and current.headers["etag"] == '"2"'


@pytest.mark.parametrize("if_match", ["*", '"1"', 'W/"1"', None])
async def test_matching_tag_star_or_no_header_succeed(
    client: httpx.AsyncClient, account: Account, if_match: str | None
) -> None:
    created = await client.post("/api/v1/memories", json={"content": "v1"}, headers=account.headers)
    headers = dict(account.headers) | ({"If-Match": if_match} if if_match is not None else {})
    response = await client.put(f"/api/v1/memories/{created.json()['id']}", json={"content": "v2"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'


@pytest.mark.parametrize("if_match", ['"2"', '"0"', '"abc"', "garbage", '"99999999999999999999999"'])
async def test_non_matching_or_malformed_tag_is_412(client: httpx.AsyncClient, account: Account, if_match: str) -> None:
    created = await client.post("/api/v1/memories", json={"content": "v1"}, headers=account.headers)
    response = await client.put(
        f"/api/v1/memories/{created.json()['id']}",
        json={"content": "v2"},
        headers={**account.headers, "If-Match": if_match},
    )
    assert_error(response, 412, "precondition_failed")


async def test_if_match_on_a_missing_object_is_404(client: httpx.AsyncClient, account: Account) -> None:
    response = await client.put(
        "/api/v1/memories/01a218c7-0feb-7eda-9259-74484cca0ebb",
        json={"content": "x"},
        headers={**account.headers, "If-Match": '"1"'},
    )
    assert_error(response, 404, "not_found")
