"""Prompts, artifacts and memories in the dashboard: browse, search, create, edit (with conflict checks), delete."""

from __future__ import annotations

import re

import httpx

from dashboard.pages import Person, csrf_of, sign_in


async def _token(client: httpx.AsyncClient, path: str) -> str:
    return csrf_of((await client.get(path)).text)


async def test_prompt_create_search_edit_delete(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    empty = await client.get("/prompts")
    assert "No prompts yet" in empty.text
    token = await _token(client, "/prompts/new")
    form = {"name": "code-review", "description": "Review", "tags": "review, python", "content": "Review {{file}}"}
    created = await client.post("/prompts/new", data={**form, "csrf_token": token})
    assert created.status_code == 303
    url = created.headers["location"].split("?")[0]

    # What the dashboard saved is what the API serves.
    api = await client.get("/api/v1/prompts", headers=person.account.headers)
    (prompt,) = api.json()["items"]
    assert prompt["tags"] == ["review", "python"] and prompt["content"] == "Review {{file}}"

    found = await client.get("/prompts", params={"q": "{{file}}"})
    assert "code-review" in found.text
    by_tag = await client.get("/prompts", params={"tag": "python"})
    assert "code-review" in by_tag.text
    none = await client.get("/prompts", params={"q": "absent"})
    assert "No prompts match" in none.text

    edit = await client.get(url)
    assert 'name="version" value="1"' in edit.text
    saved = await client.post(
        url, data={**form, "content": "Review {{file}} twice", "version": "1", "csrf_token": token}
    )
    assert saved.status_code == 303
    mine = {**form, "content": "my edit", "version": "1", "csrf_token": token}
    stale = await client.post(url, data=mine)
    assert stale.status_code == 412
    # The conflict page keeps the version this person read; only the separate button names the newer one.
    assert "someone else changed this prompt" in stale.text and "If-Match" not in stale.text
    assert 'name="version" value="1"' in stale.text and 'name="overwrite" value="2"' in stale.text
    assert "Review {{file}} twice" in stale.text and "my edit</textarea>" in stale.text
    again = await client.post(url, data=mine)  # Save again, without choosing to overwrite
    assert again.status_code == 412 and 'name="version" value="1"' in again.text
    api = await client.get(f"/api/v1/prompts/{prompt['id']}", headers=person.account.headers)
    assert api.json()["content"] == "Review {{file}} twice" and api.json()["version"] == 2
    overwritten = await client.post(url, data={**mine, "overwrite": "2"})
    assert overwritten.status_code == 303
    api = await client.get(f"/api/v1/prompts/{prompt['id']}", headers=person.account.headers)
    assert api.json()["content"] == "my edit" and api.json()["version"] == 3

    deleted = await client.post(f"{url}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/prompts?deleted=1"
    assert (await client.get(url)).status_code == 404


async def test_invalid_and_duplicate_content_is_explained(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    token = await _token(client, "/prompts/new")
    bad = await client.post("/prompts/new", data={"name": "has spaces", "content": "x", "csrf_token": token})
    assert bad.status_code == 422
    assert "Please correct the fields marked below" in bad.text and 'aria-invalid="true"' in bad.text
    assert 'value="has spaces"' in bad.text  # what was typed is kept
    ok = {"name": "dup", "content": "x", "csrf_token": token}
    assert (await client.post("/prompts/new", data=ok)).status_code == 303
    dup = await client.post("/prompts/new", data=ok)
    assert dup.status_code == 409 and "already exists" in dup.text
    # The session still works after the refused write.
    assert (await client.get("/prompts")).status_code == 200


async def test_artifacts_and_memories(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    token = await _token(client, "/artifacts/new")
    artifact = {"project": "vibexp", "slug": "notes", "title": "Notes", "content": "# Notes", "csrf_token": token}
    created = await client.post("/artifacts/new", data=artifact)
    assert created.headers["location"] == "/artifacts/vibexp/notes?saved=1"
    page = await client.get("/artifacts/vibexp/notes")
    assert "text/markdown" in page.text and "readonly" in page.text
    edited = await client.post("/artifacts/vibexp/notes", data={**artifact, "title": "Design notes", "version": "1"})
    assert edited.status_code == 303
    api = await client.get("/api/v1/artifacts/vibexp/notes", headers=person.account.headers)
    assert api.json()["title"] == "Design notes"
    assert "Design notes" in (await client.get("/artifacts", params={"q": "notes"})).text

    created = await client.post(
        "/memories/new", data={"content": "Staging DB is on 5433", "tags": "infra", "csrf_token": token}
    )
    assert created.status_code == 303
    listing = await client.get("/memories", params={"q": "staging"})
    assert re.search(r"Staging DB is on 5433", listing.text)


async def test_content_is_private_to_the_account(client: httpx.AsyncClient, person: Person) -> None:
    created = await client.post("/api/v1/memories", json={"content": "secret"}, headers=person.account.headers)
    memory_id = created.json()["id"]
    other = await client.post("/api/v1/memories", json={"content": "other"}, headers=person.account.headers)
    assert other.status_code == 201
    await sign_in(client, person)
    assert (await client.get(f"/memories/{memory_id}")).status_code == 200
    response = await client.get("/memories/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and "memory not found" in response.text
    token = await _token(client, "/memories")
    assert (await client.post("/memories/unknown/delete", data={"csrf_token": token})).status_code == 404
    assert (await client.post(f"/memories/{memory_id}/delete", data={})).status_code == 403
    assert (await client.get(f"/memories/{memory_id}")).status_code == 200


async def test_every_asset_is_served_by_the_app(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    for path, kind in (
        ("/static/app.css", "text/css"),
        ("/static/app.js", "javascript"),
        ("/static/favicon.svg", "svg"),
    ):
        response = await client.get(path)
        assert response.status_code == 200 and kind in response.headers["content-type"], path
    for page in ("/", "/usage", "/settings/api-keys", "/prompts", "/artifacts", "/memories"):
        html = (await client.get(page)).text
        assert not re.search(r'(src|href)="(https?:)?//', html), page  # no CDN, no external asset


async def test_search_box_takes_any_text(client: httpx.AsyncClient, person: Person) -> None:
    """The dashboard's search box reads q like the API (vibexp.core.content.search): operators are words, a query of
    no words finds nothing, one over 1,000 characters is a clear 422 page; never a 500."""
    await sign_in(client, person)
    token = await _token(client, "/memories/new")
    await client.post("/memories/new", data={"content": "Deploys run on Tuesdays", "tags": "", "csrf_token": token})
    for q in ['"deploy', "deploy*", "-deploy", "deploy:tuesdays", "(deploy OR"]:
        response = await client.get("/memories", params={"q": q})
        assert response.status_code == 200 and "Deploys run on Tuesdays" in response.text, q
    for q in ["!!!", '"', "AND OR NOT"]:
        response = await client.get("/memories", params={"q": q})
        assert response.status_code == 200 and "Deploys run on Tuesdays" not in response.text, q
    too_long = await client.get("/memories", params={"q": "deploy " * 200})
    assert too_long.status_code == 422 and "1000 characters" in too_long.text


async def test_an_overwrite_of_a_version_seen_on_the_conflict_page_never_overwrites_a_newer_one(
    client: httpx.AsyncClient, person: Person
) -> None:
    await sign_in(client, person)
    created = await client.post("/api/v1/memories", json={"content": "v1"}, headers=person.account.headers)
    memory = created.json()
    url = f"/memories/{memory['id']}"
    token = await _token(client, url)
    for content in ("v2", "v3"):  # two other writers since this person read version 1 and saw version 2
        await client.put(f"/api/v1{url}", json={"content": content}, headers=person.account.headers)
    mine = {"content": "mine", "tags": "", "version": "1", "csrf_token": token}
    stale = await client.post(url, data={**mine, "overwrite": "2"})
    assert stale.status_code == 412 and 'name="overwrite" value="3"' in stale.text
    assert (await client.get(f"/api/v1{url}", headers=person.account.headers)).json()["content"] == "v3"


async def test_a_form_version_that_is_no_number_is_a_conflict_not_an_error(
    client: httpx.AsyncClient, person: Person
) -> None:
    await sign_in(client, person)
    created = await client.post("/api/v1/memories", json={"content": "v1"}, headers=person.account.headers)
    url = f"/memories/{created.json()['id']}"
    token = await _token(client, url)
    for version in ("\u00b2", "x", "9" * 40, "-1"):
        form = {"content": "mine", "tags": "", "version": version, "csrf_token": token}
        for extra in ({}, {"overwrite": version}):
            response = await client.post(url, data={**form, **extra})
            assert response.status_code == 412, (version, extra, response.text[:300])
    assert (await client.get(f"/api/v1{url}", headers=person.account.headers)).json()["content"] == "v1"
