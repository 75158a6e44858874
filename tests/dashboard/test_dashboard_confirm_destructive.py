"""The dashboard's "Ask before destructive MCP tools" checkbox on the create form: checked, the key is made with
``confirm_destructive``; unchecked (the default), without; kept checked when another input is wrong."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import Person, csrf_of, sign_in
from vibexp.core.keys import service as keys


async def _post(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/settings/api-keys")
    assert 'name="confirm_destructive"' in page.text and "Ask before destructive MCP tools" in page.text
    return await client.post("/settings/api-keys", data={"csrf_token": csrf_of(page.text), "access": "full", **fields})


async def _confirming(factory: async_sessionmaker[AsyncSession], person: Person) -> dict[str, bool]:
    async with factory() as session:
        found = await keys.list_keys(session, tenant_id=person.account.tenant.id)
    return {k.name: k.confirm_destructive for k in found}


async def test_the_checkbox_makes_a_confirming_key(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    assert (await _post(client, name="asks", confirm_destructive="true")).status_code == 303
    assert (await _post(client, name="does not ask")).status_code == 303
    made = await _confirming(session_factory, person)
    assert made["asks"] is True and made["does not ask"] is False


async def test_the_checkbox_is_kept_when_another_input_is_wrong(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    response = await _post(client, name="", confirm_destructive="true")
    assert response.status_code == 422
    assert re.search(r'name="confirm_destructive" value="true" id="f-confirm_destructive" checked', response.text)
    assert "" not in await _confirming(session_factory, person)


async def test_a_bad_checkbox_value_is_a_form_error(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await sign_in(client, person)
    before = await _confirming(session_factory, person)
    response = await _post(client, name="odd", confirm_destructive="perhaps")
    assert response.status_code == 422, response.text
    assert "confirm_destructive" in response.text
    assert await _confirming(session_factory, person) == before
