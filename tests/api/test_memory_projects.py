"""Memories per project over REST: the optional ``project`` field, validated like an artifact's, and ``?project=``."""

from __future__ import annotations

import httpx

from helpers.api_errors import assert_error
from helpers.factories import Account

URL = "/api/v1/memories"


async def test_project_is_stored_filtered_and_optional(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    h = account.headers
    web = (await client.post(URL, json={"content": "web uses tabs", "project": "web"}, headers=h)).json()
    api = (await client.post(URL, json={"content": "api uses spaces", "project": "api"}, headers=h)).json()
    loose = (await client.post(URL, json={"content": "no project"}, headers=h)).json()
    assert web["project"] == "web" and api["project"] == "api" and loose["project"] is None
    assert (await client.get(f"{URL}/{web['id']}", headers=h)).json()["project"] == "web"

    only_web = (await client.get(URL, params={"project": "web"}, headers=h)).json()["items"]
    assert [m["id"] for m in only_web] == [web["id"]]
    everything = (await client.get(URL, headers=h)).json()["items"]
    assert {m["id"] for m in everything} == {web["id"], api["id"], loose["id"]}
    combined = await client.get(URL, params={"project": "api", "q": "spaces"}, headers=h)
    assert [m["id"] for m in combined.json()["items"]] == [api["id"]]
    assert (await client.get(URL, params={"project": "nope"}, headers=h)).json()["items"] == []
    # Another tenant's project of the same name shows nothing of this one's.
    assert (await client.get(URL, params={"project": "web"}, headers=other_account.headers)).json()["items"] == []

    moved = await client.put(f"{URL}/{loose['id']}", json={"project": "web"}, headers=h)
    assert moved.status_code == 200 and moved.json()["project"] == "web"
    kept = await client.put(f"{URL}/{web['id']}", json={"content": "web uses tabs, width 4"}, headers=h)
    assert kept.json()["project"] == "web"  # an update that does not name the project leaves it
    assert len((await client.get(URL, params={"project": "web"}, headers=h)).json()["items"]) == 2
    # An explicit null moves a memory to no project (for the other fields a null still means "unchanged").
    cleared = await client.put(f"{URL}/{loose['id']}", json={"project": None, "content": None}, headers=h)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["project"] is None and cleared.json()["content"] == "no project"
    assert len((await client.get(URL, params={"project": "web"}, headers=h)).json()["items"]) == 1


async def test_bad_project_names_are_422(client: httpx.AsyncClient, account: Account) -> None:
    for bad in ["Has Caps", "a/b", "..", "x" * 129, "", "-lead"]:
        response = await client.post(URL, json={"content": "c", "project": bad}, headers=account.headers)
        assert_error(response, 422, "validation_error")
    created = (await client.post(URL, json={"content": "c"}, headers=account.headers)).json()
    response = await client.put(f"{URL}/{created['id']}", json={"project": "a/b"}, headers=account.headers)
    assert_error(response, 422, "validation_error")
    assert_error(await client.get(URL, params={"project": "x" * 129}, headers=account.headers), 422)
    assert_error(await client.get(URL, params={"project": "a\x00b"}, headers=account.headers), 422)
