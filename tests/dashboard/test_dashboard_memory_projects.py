"""Memories per project in the dashboard: the form's Project field (validated) and the list's project filter."""

from __future__ import annotations

import httpx

from dashboard.pages import Person, csrf_of, sign_in


async def test_memory_project_field_and_filter(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    new = await client.get("/memories/new")
    assert 'name="project"' in new.text
    token = csrf_of(new.text)
    for content, project in [("web uses tabs", "web"), ("api uses spaces", "api"), ("loose note", "")]:
        created = await client.post(
            "/memories/new", data={"content": content, "tags": "", "project": project, "csrf_token": token}
        )
        assert created.status_code == 303, created.text
    api = await client.get("/api/v1/memories", headers=person.account.headers)
    assert {m["content"]: m["project"] for m in api.json()["items"]} == {
        "web uses tabs": "web",
        "api uses spaces": "api",
        "loose note": None,
    }

    listing = await client.get("/memories")
    assert 'id="project"' in listing.text
    web = await client.get("/memories", params={"project": "web"})
    assert "web uses tabs" in web.text and "api uses spaces" not in web.text and "loose note" not in web.text
    assert 'value="web"' in web.text  # the filter shows what it filters by
    none = await client.get("/memories", params={"project": "nope"})
    assert "No memories match" in none.text and "nope" in none.text

    # Editing shows the project and can move the memory to another one.
    (loose,) = [m for m in api.json()["items"] if m["project"] is None]
    edit = await client.get(f"/memories/{loose['id']}")
    saved = await client.post(
        f"/memories/{loose['id']}",
        data={"content": "loose note", "tags": "", "project": "web", "version": "1", "csrf_token": csrf_of(edit.text)},
    )
    assert saved.status_code == 303
    web = await client.get("/memories", params={"project": "web"})
    assert "loose note" in web.text
    # Emptying the field moves it back to no project.
    edit = await client.get(f"/memories/{loose['id']}")
    assert 'name="project" type="text" value="web"' in edit.text
    emptied = await client.post(
        f"/memories/{loose['id']}",
        data={"content": "loose note", "tags": "", "project": "", "version": "2", "csrf_token": csrf_of(edit.text)},
    )
    assert emptied.status_code == 303
    api = await client.get(f"/api/v1/memories/{loose['id']}", headers=person.account.headers)
    assert api.json()["project"] is None


async def test_bad_memory_project_is_explained(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    token = csrf_of((await client.get("/memories/new")).text)
    bad = await client.post("/memories/new", data={"content": "x", "project": "Not/Valid", "csrf_token": token})
    assert bad.status_code == 422
    assert 'aria-invalid="true"' in bad.text and "Not/Valid" in bad.text
    api = await client.get("/api/v1/memories", headers=person.account.headers)
    assert api.json()["items"] == []
