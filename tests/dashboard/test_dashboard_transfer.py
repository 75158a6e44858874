"""Settings → Export in the dashboard: the download link streams the export, the upload form (multipart, CSRF)
imports all or nothing and says what it did."""

from __future__ import annotations

import json

import httpx

from dashboard.pages import Person, csrf_of, sign_in

PAGE = "/settings/export"


async def _upload(client: httpx.AsyncClient, token: str, body: bytes, name: str = "in.jsonl") -> httpx.Response:
    files = {"file": (name, body, "application/x-ndjson")}
    return await client.post(f"{PAGE}/import", data={"csrf_token": token}, files=files)


async def test_export_link_and_import_form(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert f'href="{PAGE}/download"' in page.text and 'enctype="multipart/form-data"' in page.text
    assert 'href="/settings/export"' in (await client.get("/settings/api-keys")).text  # in the Settings navigation
    token = csrf_of(page.text)

    lines = [
        {"type": "prompt", "name": "review", "content": "Review {{file}}"},
        {"type": "memory", "content": "Prefers tabs", "project": "web"},
        {"type": "entity", "name": "Ada", "entityType": "person", "observations": ["Writes programs"]},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    done = await _upload(client, token, body)
    assert done.status_code == 200, done.text
    assert "Imported: 3 created, 0 updated, 0 unchanged." in done.text
    again = await _upload(client, token, body)
    assert "Imported: 0 created, 0 updated, 3 unchanged." in again.text

    download = await client.get(f"{PAGE}/download")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/x-ndjson")
    assert download.headers["content-disposition"].startswith("attachment;")
    exported = [json.loads(line) for line in download.text.splitlines()]
    assert [line["type"] for line in exported] == ["prompt", "memory", "memory"]
    api = await client.get("/api/v1/export", headers=person.account.headers)
    assert api.text == download.text


async def test_bad_upload_imports_nothing_and_names_the_line(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    token = csrf_of((await client.get(PAGE)).text)
    body = b'{"type": "memory", "content": "first"}\n{"type": "widget"}\n'
    bad = await _upload(client, token, body)
    assert bad.status_code == 422
    assert "Nothing was imported: line 2: unknown type" in bad.text and 'role="alert"' in bad.text
    assert (await client.get("/api/v1/export", headers=person.account.headers)).text == ""

    no_file = await client.post(f"{PAGE}/import", data={"csrf_token": token})
    assert no_file.status_code == 422 and "Choose a .jsonl file" in no_file.text
    # Without the CSRF token the upload is refused before anything is read.
    forged = await client.post(f"{PAGE}/import", files={"file": ("x.jsonl", b'{"type": "memory", "content": "x"}')})
    assert forged.status_code == 403
    assert (await client.get("/api/v1/export", headers=person.account.headers)).text == ""


async def test_signed_out_visitor_is_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in (PAGE, f"{PAGE}/download"):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
