"""Prompt versions and labels over REST (DESIGN.md "Content: versions, search, projects, export"): every write is
an immutable version, labels point at versions, ``?label=`` / ``?version=`` serve one, ETags keep working, and each
bad input is a clear 422 or 404."""

from __future__ import annotations

import asyncio
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
from vibexp.core.content.models import Prompt
from vibexp.core.content.service import ContentStore, prompts
from vibexp.core.content.versions import record_version

URL = "/api/v1/prompts"


async def _prompt_with_three_versions(client: httpx.AsyncClient, account: Account) -> str:
    created = await client.post(URL, json={"name": "greet", "content": "v1 {{who}}"}, headers=account.headers)
    assert created.status_code == 201, created.text
    prompt_id: str = created.json()["id"]
    for text in ("v2 {{who}}", "v3 {{who}}"):
        updated = await client.put(f"{URL}/{prompt_id}", json={"content": text}, headers=account.headers)
        assert updated.status_code == 200, updated.text
    return prompt_id


async def _label(client: httpx.AsyncClient, account: Account, prompt_id: str, label: str, body: Any) -> httpx.Response:
    return await client.put(f"{URL}/{prompt_id}/labels/{label}", json=body, headers=account.headers)


async def test_every_write_is_a_version_listed_newest_first(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    listed = await client.get(f"{URL}/{prompt_id}/versions", headers=account.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(v["version"], v["content"]) for v in items] == [(3, "v3 {{who}}"), (2, "v2 {{who}}"), (1, "v1 {{who}}")]
    assert all(v["prompt_id"] == prompt_id and v["name"] == "greet" and v["labels"] == [] for v in items)
    one = await client.get(f"{URL}/{prompt_id}/versions/1", headers=account.headers)
    assert one.status_code == 200 and one.json()["content"] == "v1 {{who}}" and one.headers["etag"] == '"1"'
    # A rename is a version too; the prompt row's version (the ETag) equals the newest version number.
    renamed = await client.put(f"{URL}/{prompt_id}", json={"name": "hello"}, headers=account.headers)
    assert renamed.json()["version"] == 4 and renamed.headers["etag"] == '"4"'
    four = await client.get(f"{URL}/{prompt_id}/versions/4", headers=account.headers)
    assert (four.json()["name"], four.json()["content"]) == ("hello", "v3 {{who}}")


async def test_a_refused_write_leaves_no_version(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    await client.post(URL, json={"name": "taken", "content": "x"}, headers=account.headers)
    stale = await client.put(
        f"{URL}/{prompt_id}", json={"content": "lost"}, headers=account.headers | {"If-Match": '"1"'}
    )
    assert_error(stale, 412)
    assert_error(await client.put(f"{URL}/{prompt_id}", json={"name": "taken"}, headers=account.headers), 409)
    assert_error(await client.put(f"{URL}/{prompt_id}", json={"content": ""}, headers=account.headers), 422)
    listed = (await client.get(f"{URL}/{prompt_id}/versions", headers=account.headers)).json()["items"]
    assert [v["version"] for v in listed] == [3, 2, 1]


async def test_versions_are_cursor_paginated(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"{URL}/{prompt_id}/versions", params=params, headers=account.headers)).json()
        seen += [v["version"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [3, 2, 1]
    bad = await client.get(f"{URL}/{prompt_id}/versions", params={"cursor": "!!"}, headers=account.headers)
    assert_error(bad, 422)


async def test_get_by_version_and_label_and_rollback(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    at_one = await client.get(f"{URL}/{prompt_id}", params={"version": 1}, headers=account.headers)
    assert at_one.status_code == 200, at_one.text
    body = at_one.json()
    assert (body["id"], body["version"], body["content"], body["latest_version"]) == (prompt_id, 1, "v1 {{who}}", 3)
    assert at_one.headers["etag"] == '"1"'

    assert (await _label(client, account, prompt_id, "production", {"version": 3})).status_code == 200
    prod = await client.get(f"{URL}/{prompt_id}", params={"label": "production"}, headers=account.headers)
    assert (prod.json()["version"], prod.json()["labels"], prod.headers["etag"]) == (3, ["production"], '"3"')
    # Rollback: move production to an older version.
    moved = await _label(client, account, prompt_id, "production", {"version": 2})
    assert moved.json()["version"] == 2 and moved.json()["label"] == "production"
    prod = await client.get(f"{URL}/{prompt_id}", params={"label": "production"}, headers=account.headers)
    assert (prod.json()["version"], prod.json()["content"]) == (2, "v2 {{who}}")
    listed = (await client.get(f"{URL}/{prompt_id}/versions", headers=account.headers)).json()["items"]
    assert [v["labels"] for v in listed] == [[], ["production"], []]

    # The plain GET still serves the latest, as the hot read always did (no labels field on it).
    latest = await client.get(f"{URL}/{prompt_id}", headers=account.headers)
    assert latest.json()["version"] == 3 and "labels" not in latest.json() and latest.headers["etag"] == '"3"'

    deleted = await client.delete(f"{URL}/{prompt_id}/labels/production", headers=account.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"{URL}/{prompt_id}", params={"label": "production"}, headers=account.headers)
    assert_error(gone, 404, "not_found")
    assert_error(await client.delete(f"{URL}/{prompt_id}/labels/production", headers=account.headers), 404)


async def test_if_match_after_label_moves_and_from_an_old_version(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    etag = (await client.get(f"{URL}/{prompt_id}", headers=account.headers)).headers["etag"]
    await _label(client, account, prompt_id, "production", {"version": 1})
    await _label(client, account, prompt_id, "production", {"version": 2})
    # Moving labels does not change the prompt: the latest ETag still matches.
    ok = await client.put(f"{URL}/{prompt_id}", json={"content": "v4"}, headers=account.headers | {"If-Match": etag})
    assert ok.status_code == 200 and ok.json()["version"] == 4
    # An ETag read from an old version is stale for an update.
    old = (await client.get(f"{URL}/{prompt_id}", params={"version": 2}, headers=account.headers)).headers["etag"]
    stale = await client.put(f"{URL}/{prompt_id}", json={"content": "x"}, headers=account.headers | {"If-Match": old})
    assert_error(stale, 412, "precondition_failed")
    # The label still points at version 2, whatever was written since.
    prod = await client.get(f"{URL}/{prompt_id}", params={"label": "production"}, headers=account.headers)
    assert prod.json()["version"] == 2


async def test_deleting_the_prompt_removes_its_versions_and_labels(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    await _label(client, account, prompt_id, "production", {"version": 1})
    assert (await client.delete(f"{URL}/{prompt_id}", headers=account.headers)).status_code == 204
    assert_error(await client.get(f"{URL}/{prompt_id}/versions", headers=account.headers), 404)
    assert_error(await client.get(f"{URL}/{prompt_id}/versions/1", headers=account.headers), 404)
    # The name is free again and starts over at version 1.
    again = await client.post(URL, json={"name": "greet", "content": "new"}, headers=account.headers)
    listed = (await client.get(f"{URL}/{again.json()['id']}/versions", headers=account.headers)).json()["items"]
    assert [v["version"] for v in listed] == [1]


async def test_another_tenants_versions_are_not_found(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    await _label(client, account, prompt_id, "production", {"version": 1})
    for path, params in (
        (f"{URL}/{prompt_id}/versions", {}),
        (f"{URL}/{prompt_id}/versions/1", {}),
        (f"{URL}/{prompt_id}", {"version": 1}),
        (f"{URL}/{prompt_id}", {"label": "production"}),
    ):
        assert_error(await client.get(path, params=params, headers=other_account.headers), 404, "not_found")
    assert_error(await _label(client, other_account, prompt_id, "production", {"version": 2}), 404)
    assert_error(await client.delete(f"{URL}/{prompt_id}/labels/production", headers=other_account.headers), 404)


# -- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["Production", "-prod", "prod_1", "a" * 64, "prod%20x", "pröd"])
async def test_label_that_is_not_a_slug_is_422(client: httpx.AsyncClient, account: Account, label: str) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    assert_error(await _label(client, account, prompt_id, label, {"version": 1}), 422, "validation_error")
    assert_error(await client.delete(f"{URL}/{prompt_id}/labels/{label}", headers=account.headers), 422)
    bad_get = await client.get(f"{URL}/{prompt_id}", params={"label": label}, headers=account.headers)
    assert_error(bad_get, 422, "validation_error")


async def test_label_pointing_at_a_missing_version_is_422(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    error = assert_error(await _label(client, account, prompt_id, "production", {"version": 4}), 422, "invalid_input")
    assert "no version 4" in error["message"] and "latest is 3" in error["message"]
    for body in ({"version": 0}, {"version": "two"}, {}, {"version": 1.5}):
        assert_error(await _label(client, account, prompt_id, "production", body), 422, "validation_error")
    assert_error(await _label(client, account, "no-such-prompt", "production", {"version": 1}), 404, "not_found")


async def test_version_and_label_together_is_422(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    await _label(client, account, prompt_id, "production", {"version": 1})
    both = await client.get(f"{URL}/{prompt_id}", params={"version": 1, "label": "production"}, headers=account.headers)
    error = assert_error(both, 422, "invalid_input")
    assert "either label or version" in error["message"]


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5", ""])
async def test_version_not_a_positive_integer_is_422(client: httpx.AsyncClient, account: Account, value: str) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    response = await client.get(f"{URL}/{prompt_id}", params={"version": value}, headers=account.headers)
    assert_error(response, 422, "validation_error")
    if value:  # an empty path segment is another route
        assert_error(await client.get(f"{URL}/{prompt_id}/versions/{value}", headers=account.headers), 422)


async def test_unknown_label_or_version_on_get_is_404(client: httpx.AsyncClient, account: Account) -> None:
    prompt_id = await _prompt_with_three_versions(client, account)
    unknown = await client.get(f"{URL}/{prompt_id}", params={"label": "staging"}, headers=account.headers)
    assert "staging" in assert_error(unknown, 404, "not_found")["message"]
    assert_error(await client.get(f"{URL}/{prompt_id}", params={"version": 9}, headers=account.headers), 404)
    assert_error(await client.get(f"{URL}/{prompt_id}/versions/9", headers=account.headers), 404, "not_found")
    assert_error(await client.get(f"{URL}/nope", params={"version": 1}, headers=account.headers), 404)


async def test_plain_get_stays_session_less(
    client: httpx.AsyncClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot read (vibexp.core.hotread) is untouched: no ORM session for ``GET /prompts/{id}``; one only when
    the request asks for a label or version. Only sessions opened by the request count: the app's background tasks
    (the key poll, the usage flush) open their own, in their own asyncio tasks, at times of their choosing."""
    prompt_id = await _prompt_with_three_versions(client, account)
    await client.get(f"{URL}/{prompt_id}", headers=account.headers)  # the key is verified and cached now
    opened: list[object] = []
    original = AsyncSession.__init__

    requests = asyncio.current_task()  # httpx's ASGI transport runs the app in the calling task

    def counting(self: AsyncSession, *args: Any, **kwargs: Any) -> None:
        if asyncio.current_task() is requests:
            opened.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(AsyncSession, "__init__", counting)
    for _ in range(3):
        assert (await client.get(f"{URL}/{prompt_id}", headers=account.headers)).json()["version"] == 3
    assert opened == []
    assert (await client.get(f"{URL}/{prompt_id}", params={"version": 1}, headers=account.headers)).is_success
    assert len(opened) == 1


def test_a_store_with_an_after_write_hook_cannot_create_in_one_row() -> None:
    """The session-less single-row create (core/hotwrite.py) would skip the hook: prompts must not get it."""
    assert prompts.single_row_create is False
    with pytest.raises(ValueError, match="after-write hook"):
        ContentStore(Prompt, noun="prompt", single_row_create=True, after_write=record_version)


async def test_plain_get_is_answered_directly_as_fastapi_answers_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    account: Account,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``GET /prompts/{id}`` with no query string skips FastAPI's dependency solver (``route_shortcut``'s direct
    endpoint), and answers exactly what the FastAPI endpoint answers: the prompt, a 404, a refused scope."""
    prompt_id = await _prompt_with_three_versions(client, account)
    reader = await make_person(session_factory, tenant_id=account.tenant.id, role=Role.member, scopes=["memories:read"])
    solved = count_solved(monkeypatch)
    requests = [
        (f"{URL}/{prompt_id}", account.headers),
        (f"{URL}/nope", account.headers),
        (f"{URL}/{prompt_id}", reader.headers),
    ]

    async def answers() -> list[tuple[int, Any, str | None]]:
        got = [await client.get(url, headers=headers) for url, headers in requests]
        assert all(answer.headers["x-ratelimit-limit"] for answer in got)
        return [(answer.status_code, answer.json(), answer.headers.get("etag")) for answer in got]

    direct = await answers()
    assert solved == []  # no request went through the solver
    assert [status for status, _, _ in direct] == [200, 404, 403]
    assert direct[0][1]["version"] == 3 and direct[0][2] == '"3"'
    with through_fastapi(app):
        assert await answers() == direct
    assert len(solved) == len(requests)
    # With a query string FastAPI validates it, as before.
    assert_error(await client.get(f"{URL}/{prompt_id}", params={"version": "x"}, headers=account.headers), 422)
