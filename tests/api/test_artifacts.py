"""Artifacts over REST, addressed by project and slug; the pair is unique per account (409)."""

from __future__ import annotations

import httpx

from helpers.api_errors import assert_error
from helpers.factories import Account


async def test_artifact_lifecycle(client: httpx.AsyncClient, account: Account) -> None:
    body = {
        "project": "webapp",
        "slug": "design-notes",
        "title": "Design notes",
        "content": "# Notes\n",
        "content_type": "text/markdown",
        "tags": ["design"],
    }
    created = await client.post("/api/v1/artifacts", json=body, headers=account.headers)
    assert created.status_code == 201, created.text
    artifact = created.json()
    assert {k: artifact[k] for k in body} == body
    assert created.headers["etag"] == '"1"'

    fetched = await client.get("/api/v1/artifacts/webapp/design-notes", headers=account.headers)
    assert fetched.status_code == 200 and fetched.json() == artifact

    updated = await client.put(
        "/api/v1/artifacts/webapp/design-notes", json={"content": "# Notes v2\n"}, headers=account.headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["content"] == "# Notes v2\n" and updated.json()["title"] == "Design notes"
    assert updated.json()["version"] == 2

    deleted = await client.delete("/api/v1/artifacts/webapp/design-notes", headers=account.headers)
    assert deleted.status_code == 204
    assert_error(await client.get("/api/v1/artifacts/webapp/design-notes", headers=account.headers), 404)


async def test_duplicate_slug_in_a_project_is_409(client: httpx.AsyncClient, account: Account) -> None:
    body = {"project": "p", "slug": "s", "title": "first", "content": "1"}
    assert (await client.post("/api/v1/artifacts", json=body, headers=account.headers)).status_code == 201
    again = await client.post("/api/v1/artifacts", json={**body, "title": "second"}, headers=account.headers)
    assert_error(again, 409, "already_exists")
    # The same slug in another project is a different artifact.
    other = await client.post("/api/v1/artifacts", json={**body, "project": "q"}, headers=account.headers)
    assert other.status_code == 201
    assert (await client.get("/api/v1/artifacts/p/s", headers=account.headers)).json()["title"] == "first"


async def test_list_filters_by_project(client: httpx.AsyncClient, account: Account) -> None:
    for project, slug in [("a", "one"), ("a", "two"), ("b", "one")]:
        body = {"project": project, "slug": slug, "title": slug, "content": "x"}
        assert (await client.post("/api/v1/artifacts", json=body, headers=account.headers)).status_code == 201
    listed = await client.get("/api/v1/artifacts", params={"project": "a"}, headers=account.headers)
    assert sorted(a["slug"] for a in listed.json()["items"]) == ["one", "two"]
    everything = await client.get("/api/v1/artifacts", headers=account.headers)
    assert len(everything.json()["items"]) == 3


async def test_artifact_update_cannot_move_it(client: httpx.AsyncClient, account: Account) -> None:
    body = {"project": "p", "slug": "s", "title": "t", "content": "c"}
    await client.post("/api/v1/artifacts", json=body, headers=account.headers)
    # project/slug are the address, not updatable fields: unknown fields are ignored, the address stays.
    response = await client.put(
        "/api/v1/artifacts/p/s", json={"project": "elsewhere", "title": "t2"}, headers=account.headers
    )
    assert response.status_code == 200
    assert response.json()["project"] == "p" and response.json()["title"] == "t2"
