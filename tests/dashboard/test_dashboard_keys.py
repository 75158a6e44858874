"""Settings → API Keys over HTTP: the key is shown once, revoke works at once, rotation, CSRF, tenant isolation."""

from __future__ import annotations

import asyncio
import re

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, make_person, sign_in
from helpers.windows import inside_one_hour_window
from vibexp.core.keys import service as keys

KEY_RE = re.compile(r'value="(vib_[0-9a-f]{64})"')
WARNING = "API keys are displayed only once during creation. Copy and save the key immediately."


async def shown_once(posted: httpx.Response, client: httpx.AsyncClient) -> httpx.Response:
    """A create/rotate POST answers 303 to the one-time page; that page (200) shows the key."""
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"].startswith("/settings/api-keys/created/")
    page = await client.get(posted.headers["location"])
    assert page.status_code == 200, page.text
    return page


async def create_via_dashboard(client: httpx.AsyncClient, name: str, description: str = "") -> tuple[str, str]:
    """Returns (plaintext, key id) read from the once-shown page and the list."""
    page = await client.get("/settings/api-keys")
    response = await shown_once(
        await client.post(
            "/settings/api-keys",
            data={"name": name, "description": description, "access": "full", "csrf_token": csrf_of(page.text)},
        ),
        client,
    )
    assert WARNING in response.text
    assert "data-copy" in response.text  # the copy button
    assert response.headers["cache-control"] == "no-store"
    match = KEY_RE.search(response.text)
    key_id = re.search(r'href="/settings/api-keys/([^"/]+)" data-key-link', response.text)
    assert match and key_id
    return match.group(1), key_id.group(1)


async def test_create_shows_the_key_once_and_it_works(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    key, _ = await create_via_dashboard(client, "Work Laptop - Cursor", "Cursor on the work laptop")
    assert (await client.get("/api/v1/prompts", headers={"Authorization": f"Bearer {key}"})).status_code == 200
    listing = await client.get("/settings/api-keys")
    assert "Work Laptop - Cursor" in listing.text and key[:12] in listing.text
    assert key not in listing.text  # never again after creation
    api_view = await client.get("/api/v1/api-keys", headers={"Authorization": f"Bearer {key}"})
    created = [k for k in api_view.json()["items"] if k["name"] == "Work Laptop - Cursor"]
    assert created[0]["source"] == "dashboard"


async def test_create_with_an_empty_name_explains_why(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    page = await client.get("/settings/api-keys")
    response = await client.post(
        "/settings/api-keys", data={"name": "  ", "access": "read", "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text
    assert "Enter a name: a descriptive name, e.g. &#34;Work Laptop - Cursor&#34;." in response.text
    assert "test key" in response.text  # the list is still there, with the form kept open
    assert '<details class="create" open>' in response.text


async def test_create_without_csrf_changes_nothing(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    before = await _key_count(session_factory, person)
    for data in ({"name": "forged"}, {"name": "forged", "csrf_token": "not-the-token"}):
        response = await client.post("/settings/api-keys", data=data)
        assert response.status_code == 403
        assert "Request refused" in response.text
    assert await _key_count(session_factory, person) == before


async def test_a_csrf_token_from_another_session_is_refused(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as other_browser:
        other_token = csrf_of((await other_browser.get("/login")).text)
    response = await client.post("/settings/api-keys", data={"name": "x", "csrf_token": other_token})
    assert response.status_code == 403
    header = await client.post("/settings/api-keys", data={"name": "x"}, headers={"X-CSRF-Token": other_token})
    assert header.status_code == 403


async def test_revoke_asks_first_and_takes_effect_at_once(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    key, key_id = await create_via_dashboard(client, "to revoke")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/v1/prompts", headers=headers)).status_code == 200  # now cached by the verifier
    confirm = await client.get(f"/settings/api-keys/{key_id}/revoke")
    assert confirm.status_code == 200 and "Tools using this key lose access immediately" in confirm.text
    response = await client.post(f"/settings/api-keys/{key_id}/revoke", data={"csrf_token": csrf_of(confirm.text)})
    assert response.status_code == 303
    assert (await client.get("/api/v1/prompts", headers=headers)).status_code == 401
    listing = await client.get(response.headers["location"])
    assert "Revoked “to revoke”" in listing.text and "badge-revoked" in listing.text


async def test_rotate_with_and_without_a_grace_period(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    old, old_id = await create_via_dashboard(client, "rotating")
    detail = await client.get(f"/settings/api-keys/{old_id}")
    token = csrf_of(detail.text)
    rotated = await shown_once(
        await client.post(f"/settings/api-keys/{old_id}/rotate", data={"grace_period": "3600", "csrf_token": token}),
        client,
    )
    assert WARNING in rotated.text
    new = KEY_RE.search(rotated.text)
    assert new and new.group(1) != old
    assert "keeps working for 1 hour" in rotated.text
    for key in (old, new.group(1)):
        assert (await client.get("/api/v1/prompts", headers={"Authorization": f"Bearer {key}"})).status_code == 200

    link = re.search(r'href="/settings/api-keys/([^"/]+)" data-key-link', rotated.text)
    assert link
    new_id = link.group(1)
    again = await shown_once(
        await client.post(f"/settings/api-keys/{new_id}/rotate", data={"grace_period": "0", "csrf_token": token}),
        client,
    )
    assert "The old key was revoked" in again.text
    assert (await client.get("/api/v1/prompts", headers={"Authorization": f"Bearer {new.group(1)}"})).status_code == 401
    # A revoked key cannot be rotated: a readable error page, not a stack trace.
    refused = await client.post(f"/settings/api-keys/{new_id}/rotate", data={"grace_period": "0", "csrf_token": token})
    assert refused.status_code == 422 and "cannot be rotated" in refused.text


async def test_key_usage_page_shows_requests_and_actions(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    await inside_one_hour_window()  # "used this hour" is read back after the request
    key, key_id = await create_via_dashboard(client, "watched")
    await client.get("/api/v1/prompts", headers={"Authorization": f"Bearer {key}", "User-Agent": "curl/8.5.0"})
    for _ in range(40):  # the usage recorder flushes every 0.5 s
        page = await client.get(f"/settings/api-keys/{key_id}")
        if 'data-testid="request-count">1<' in page.text:
            break
        await asyncio.sleep(0.1)
    assert 'data-testid="request-count">1<' in page.text
    assert "curl" in page.text and "/prompts" in page.text
    assert 'id="chart-24h-data"' in page.text and 'id="chart-7d-data"' in page.text
    usage = await client.get("/usage")
    assert "Free" in usage.text and "1,000" in usage.text and "watched" in usage.text
    assert 'data-testid="used-this-hour">1<' in usage.text


async def test_another_accounts_key_is_not_found(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    stranger = await make_person(session_factory)
    await sign_in(client, person)
    page = await client.get("/settings/api-keys")
    for path in (
        f"/settings/api-keys/{stranger.account.key_id}",
        f"/settings/api-keys/{stranger.account.key_id}/revoke",
    ):
        response = await client.get(path)
        assert response.status_code == 404 and "API key not found" in response.text
    revoke = await client.post(
        f"/settings/api-keys/{stranger.account.key_id}/revoke", data={"csrf_token": csrf_of(page.text)}
    )
    assert revoke.status_code == 404
    assert (await client.get("/api/v1/prompts", headers=stranger.account.headers)).status_code == 200


async def _key_count(factory: async_sessionmaker[AsyncSession], person: Person) -> int:
    async with factory() as session:
        return len(await keys.list_keys(session, tenant_id=person.account.tenant.id))


async def test_reloading_the_created_page_neither_mints_nor_shows_a_key_again(
    app: FastAPI, client: httpx.AsyncClient, person: Person
) -> None:
    await sign_in(client, person)
    page = await client.get("/settings/api-keys")
    posted = await client.post(
        "/settings/api-keys", data={"name": "once", "access": "full", "csrf_token": csrf_of(page.text)}
    )
    shown = await shown_once(posted, client)
    key = KEY_RE.search(shown.text)
    assert key
    for _ in range(3):  # reload, back/forward: the same GET
        again = await client.get(posted.headers["location"])
        assert again.status_code == 410 and "shown once and cannot be shown again" in again.text
        assert not KEY_RE.search(again.text) and "vib_" not in again.text
    listing = await client.get("/settings/api-keys")
    assert listing.text.count(">once<") + listing.text.count(">once ") <= 1
    keys = await client.get("/api/v1/api-keys", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert [k["name"] for k in keys.json()["items"]].count("once") == 1
    # Another browser session cannot open the page, even with the URL.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as other:
        await sign_in(other, person)
        posted = await client.post(
            "/settings/api-keys", data={"name": "twice", "access": "full", "csrf_token": csrf_of(page.text)}
        )
        stolen = await other.get(posted.headers["location"])
        assert stolen.status_code == 410 and "vib_" not in stolen.text
        # ...and the rightful session still sees it once: the other session's attempt consumed nothing.
        assert (await client.get(posted.headers["location"])).status_code == 200


async def test_reloading_after_rotation_shows_nothing(client: httpx.AsyncClient, person: Person) -> None:
    await sign_in(client, person)
    _, old_id = await create_via_dashboard(client, "rotate-once")
    token = csrf_of((await client.get(f"/settings/api-keys/{old_id}")).text)
    posted = await client.post(f"/settings/api-keys/{old_id}/rotate", data={"grace_period": "0", "csrf_token": token})
    assert "Key rotated" in (await shown_once(posted, client)).text
    again = await client.get(posted.headers["location"])
    assert again.status_code == 410 and "vib_" not in again.text
