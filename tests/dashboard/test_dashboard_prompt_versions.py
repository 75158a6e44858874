"""A prompt's versions in the dashboard: the history on its page, a version's diff against the previous one
(escaped), and "Promote to production" (CSRF-checked) moving the label MCP prompts/get serves."""

from __future__ import annotations

import re

import httpx

from dashboard.pages import Person, csrf_of, sign_in

API = "/api/v1/prompts"


async def _prompt(client: httpx.AsyncClient, person: Person) -> str:
    created = await client.post(
        API, json={"name": "review", "content": "line one\nline two"}, headers=person.account.headers
    )
    prompt_id: str = created.json()["id"]
    changed = {"content": "line one\nline <b>2</b> & more", "tags": ["x"]}
    assert (await client.put(f"{API}/{prompt_id}", json=changed, headers=person.account.headers)).is_success
    return prompt_id


async def test_history_diff_and_promote(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    prompt_id = await _prompt(client, person)

    page = await client.get(f"/prompts/{prompt_id}")
    assert page.status_code == 200 and "Version history" in page.text
    assert re.findall(rf'href="/prompts/{prompt_id}/versions/(\d+)"', page.text) == ["2", "1"]
    assert page.text.count("Promote to production") == 2

    diff = await client.get(f"/prompts/{prompt_id}/versions/2")
    assert diff.status_code == 200 and "Changes from version 1" in diff.text
    # The diff is escaped: the content's markup is shown, never interpreted.
    assert '<span class="diff-remove">-line two</span>' in diff.text
    assert '<span class="diff-add">+line &lt;b&gt;2&lt;/b&gt; &amp; more</span>' in diff.text
    assert "<b>2</b>" not in diff.text
    assert "<strong>tags</strong>" in diff.text
    first = await client.get(f"/prompts/{prompt_id}/versions/1")
    assert "First recorded version" in first.text

    token = csrf_of(first.text)
    promoted = await client.post(f"/prompts/{prompt_id}/versions/1/promote", data={"csrf_token": token})
    assert promoted.status_code == 303
    assert promoted.headers["location"] == f"/prompts/{prompt_id}/versions/1?promoted=1"
    shown = await client.get(promoted.headers["location"])
    assert "Promoted to production." in shown.text and 'badge-active">production' in shown.text
    api = await client.get(f"{API}/{prompt_id}", params={"label": "production"}, headers=person.account.headers)
    assert api.json()["version"] == 1
    page = await client.get(f"/prompts/{prompt_id}")
    assert page.text.count("Promote to production") == 1  # not on the version already in production

    # Saving the dashboard's form is a version too; production stays where it was.
    form = {"name": "review", "description": "", "tags": "x", "content": "three", "version": "2", "csrf_token": token}
    assert (await client.post(f"/prompts/{prompt_id}", data=form)).status_code == 303
    page = await client.get(f"/prompts/{prompt_id}")
    assert re.findall(rf'href="/prompts/{prompt_id}/versions/(\d+)"', page.text) == ["3", "2", "1"]
    api = await client.get(f"{API}/{prompt_id}", params={"label": "production"}, headers=person.account.headers)
    assert api.json()["version"] == 1


async def test_promote_needs_the_csrf_token_and_a_real_version(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    prompt_id = await _prompt(client, person)
    for data in ({}, {"csrf_token": "forged"}):
        refused = await client.post(f"/prompts/{prompt_id}/versions/1/promote", data=data)
        assert refused.status_code == 403
    api = await client.get(f"{API}/{prompt_id}", params={"label": "production"}, headers=person.account.headers)
    assert api.status_code == 404  # nothing was promoted

    token = csrf_of((await client.get(f"/prompts/{prompt_id}")).text)
    missing = await client.post(f"/prompts/{prompt_id}/versions/7/promote", data={"csrf_token": token})
    assert missing.status_code == 422 and "no version 7" in missing.text
    assert (await client.get(f"/prompts/{prompt_id}/versions/7")).status_code == 404
    assert (await client.get(f"/prompts/{prompt_id}/versions/zero")).status_code == 422
    assert (await client.get("/prompts/nope/versions/1")).status_code == 404


async def test_another_tenants_versions_are_not_found(
    client: httpx.AsyncClient, person: Person, other_person: Person
) -> None:
    prompt_id = await _prompt(client, person)
    await sign_in(client, other_person)
    assert (await client.get(f"/prompts/{prompt_id}/versions/1")).status_code == 404
    token = csrf_of((await client.get("/prompts")).text)
    assert (
        await client.post(f"/prompts/{prompt_id}/versions/1/promote", data={"csrf_token": token})
    ).status_code == 404
