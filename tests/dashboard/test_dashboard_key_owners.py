"""Settings → API Keys for admins: whose each key is (under its name) and the "Mine / Service / Everyone's"
filter; a member sees neither (only their own keys are listed to them anyway)."""

from __future__ import annotations

import re
import secrets

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import PASSWORD, Person, sign_in
from helpers.factories import TEST_ACTOR
from vibexp.core.access import Role
from vibexp.core.db import session_scope
from vibexp.core.keys import service as keys
from vibexp.core.users.service import create_user

PAGE = "/settings/api-keys"


def _names(html: str) -> list[str]:
    return re.findall(r'<a href="/settings/api-keys/[^"/]+">([^<]+)</a><', html)


async def test_owner_column_and_filter(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = person.account.tenant.id
    member_email = f"{secrets.token_hex(4)}@example.com"
    async with session_scope(session_factory) as session:
        member = await create_user(
            session, tenant_id=tenant_id, email=member_email, password=PASSWORD, role=Role.member
        )
        me = await create_user(session, tenant_id=tenant_id, email=f"a-{member_email}", password=PASSWORD)
        await keys.create_key(session, actor=TEST_ACTOR, tenant_id=tenant_id, name="Mine laptop", owner_user_id=me.id)
        await keys.create_key(
            session, actor=TEST_ACTOR, tenant_id=tenant_id, name="Their laptop", owner_user_id=member.id
        )
    admin = Person(email=f"a-{member_email}", password=PASSWORD, account=person.account)
    await sign_in(client, admin)

    everyone = await client.get(PAGE)
    assert everyone.status_code == 200
    owners = re.findall(r'data-testid="key-owner">(.*?)</span><', everyone.text)
    assert admin.email in owners and member_email in owners and any("Service key" in o for o in owners)
    assert {"Mine laptop", "Their laptop"} <= set(_names(everyone.text))

    mine = await client.get(f"{PAGE}?owner=me")
    assert _names(mine.text) == ["Mine laptop"]
    assert 'href="/settings/api-keys?status=active&amp;owner=me"' in mine.text  # the tabs keep the filter
    service = await client.get(f"{PAGE}?owner=service")
    assert "Mine laptop" not in service.text and "Their laptop" not in service.text
    assert _names(service.text)  # the account's own service key (the test factory's)
    bad = await client.get(f"{PAGE}?owner=nobody")
    assert bad.status_code == 422

    await client.post(
        "/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', mine.text).group(1)}
    )
    await sign_in(client, Person(email=member_email, password=PASSWORD, account=person.account))
    own = await client.get(PAGE)
    assert own.status_code == 200
    assert _names(own.text) == ["Their laptop"]
    assert 'data-testid="key-owner"' not in own.text and 'data-testid="owner-filter"' not in own.text


async def test_service_key_checkbox(
    client: httpx.AsyncClient, person: Person, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = person.account.tenant.id
    email = f"{secrets.token_hex(4)}@example.com"
    async with session_scope(session_factory) as session:
        await create_user(session, tenant_id=tenant_id, email=email, password=PASSWORD, role=Role.member)
    await sign_in(client, person)  # the account's owner
    page = await client.get(PAGE)
    assert 'name="service_key"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    made = await client.post(
        PAGE, data={"csrf_token": token.group(1), "name": "Shared CI", "access": "full", "service_key": "true"}
    )
    assert made.status_code == 303, made.text
    mine = await client.post(PAGE, data={"csrf_token": token.group(1), "name": "My laptop", "access": "full"})
    assert mine.status_code == 303, mine.text
    assert "Shared CI" in (await client.get(f"{PAGE}?owner=service")).text
    assert "My laptop" not in (await client.get(f"{PAGE}?owner=service")).text
    assert "My laptop" in (await client.get(f"{PAGE}?owner=me")).text

    await client.post("/logout", data={"csrf_token": token.group(1)})
    await sign_in(client, Person(email=email, password=PASSWORD, account=person.account))
    page = await client.get(PAGE)
    assert 'name="service_key"' not in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    refused = await client.post(
        PAGE, data={"csrf_token": token.group(1), "name": "Sneaky", "access": "read", "service_key": "true"}
    )
    assert refused.status_code == 403 and "Only admins and owners make service keys" in refused.text
