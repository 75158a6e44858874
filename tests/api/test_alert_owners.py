"""Alerts name their key's owner and filter by it (issue 28, "Teams"): ``owner`` in ``GET /api/v1/alerts`` and in the
webhook body, ``?owner=me|service|<email>|<user id>`` as the key list reads it, a page of alerts in one query, and
the refusals (a member's key may not read alerts at all; ``owner=me`` from a service key; too long). SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.factories import Account, make_account
from helpers.receiver import Answer, Receiver
from helpers.teams import Person, make_person
from vibexp.core.access import Role
from vibexp.core.alerts import service as alerts
from vibexp.core.alerts.models import AlertKind, DeliveryState, WebhookDelivery
from vibexp.core.alerts.sender import WebhookSender
from vibexp.core.db import create_engine, create_session_factory, session_scope
from vibexp.core.tenants.models import Tenant

Factory = async_sessionmaker[AsyncSession]
URL = "/api/v1/alerts"


async def _raise(factory: Factory, tenant_id: str, key_id: str, kind: AlertKind = AlertKind.new_network) -> str:
    async with session_scope(factory) as session:
        alert = await alerts.raise_alert(session, tenant_id=tenant_id, key_id=key_id, kind=kind, details={"n": 1})
        assert alert is not None
        return alert.id


def _owner(person: Person) -> dict[str, str]:
    return {"user_id": person.user_id, "email": person.email}


async def _ids(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    answer = await client.get(URL, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def test_alerts_name_and_filter_by_owner(
    client: httpx.AsyncClient, account: Account, session_factory: Factory
) -> None:
    tenant_id = account.tenant.id
    admin = await make_person(session_factory, tenant_id=tenant_id, role=Role.admin)
    member = await make_person(session_factory, tenant_id=tenant_id, role=Role.member)
    on_service = await _raise(session_factory, tenant_id, account.key_id)
    on_admin = await _raise(session_factory, tenant_id, admin.key_id)
    on_member = await _raise(session_factory, tenant_id, member.key_id)

    listed = await client.get(URL, headers=admin.headers)
    assert listed.status_code == 200, listed.text
    owners = {item["id"]: item["owner"] for item in listed.json()["items"]}
    assert owners == {on_service: None, on_admin: _owner(admin), on_member: _owner(member)}

    assert await _ids(client, admin.headers, owner="me") == [on_admin]
    assert await _ids(client, admin.headers, owner="service") == [on_service]
    assert await _ids(client, admin.headers, owner=member.email) == [on_member]
    assert await _ids(client, admin.headers, owner=member.user_id) == [on_member]
    assert await _ids(client, admin.headers, owner="nobody@example.com") == []
    assert await _ids(client, admin.headers, owner="") == [on_member, on_admin, on_service]  # blank: no filter
    assert await _ids(client, account.headers, owner=admin.user_id, kind="new_network") == [on_admin]
    # The acknowledged alert still names its owner.
    acked = await client.post(f"{URL}/{on_member}/acknowledge", headers=admin.headers)
    assert acked.status_code == 200 and acked.json()["owner"] == _owner(member)


async def test_owner_filter_answers_as_the_key_list_does(
    client: httpx.AsyncClient, account: Account, session_factory: Factory
) -> None:
    member = await make_person(session_factory, tenant_id=account.tenant.id, role=Role.member)
    admin = await make_person(session_factory, tenant_id=account.tenant.id, role=Role.admin)
    await _raise(session_factory, account.tenant.id, member.key_id)
    # A service key is nobody: owner=me is the key list's 422.
    for url in (URL, "/api/v1/api-keys"):
        nobody = assert_error(await client.get(url, params={"owner": "me"}, headers=account.headers), 422)
        assert nobody["code"] == "invalid_input" and "owner=me" in nobody["message"]
        too_long = await client.get(url, params={"owner": "x" * 255}, headers=admin.headers)
        assert "query.owner" in assert_error(too_long, 422, "validation_error")["message"]
    # A member's role holds no audit:read: alerts are refused, whoever the filter names (the keys list narrows to
    # their own keys instead, as before).
    for owner in ("me", admin.email, member.email):
        refused = await client.get(URL, params={"owner": owner}, headers=member.headers)
        assert "audit:read" in assert_error(refused, 403, "insufficient_scope")["message"]
    keys = await client.get("/api/v1/api-keys", params={"owner": admin.email}, headers=member.headers)
    assert keys.json()["items"] == []


@contextmanager
def _statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_a_page_of_alerts_and_their_owners_is_one_query(account: Account, session_factory: Factory) -> None:
    tenant_id = account.tenant.id
    people = [await make_person(session_factory, tenant_id=tenant_id, role=Role.admin) for _ in range(3)]
    for person in people:
        await _raise(session_factory, tenant_id, person.key_id)
    await _raise(session_factory, tenant_id, account.key_id)
    engine = session_factory.kw["bind"]
    async with session_factory() as session:
        with _statements(engine) as seen:
            page = await alerts.list_alerts(session, tenant_id=tenant_id)
            owners = [alert.owner for alert in page.items]
    assert len(seen) == 1, seen
    assert sorted(o["email"] for o in owners if o) == sorted(p.email for p in people) and owners.count(None) == 1


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    async with engine.begin() as conn:  # nothing this test queued stays due for another test's sender
        await conn.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.state == DeliveryState.pending.value)
            .values(state=DeliveryState.failed.value)
        )
    await engine.dispose()


async def test_the_webhook_body_names_the_owner(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    account = await make_account(factory)
    member = await make_person(factory, tenant_id=account.tenant.id, role=Role.member)
    with Receiver(Answer(204)) as receiver:
        async with session_scope(factory) as session:
            tenant = await session.get_one(Tenant, account.tenant.id)
            tenant.alert_webhook_url = receiver.url()
        personal = await _raise(factory, account.tenant.id, member.key_id)
        service_alert = await _raise(factory, account.tenant.id, account.key_id, AlertKind.request_spike)
        sender = WebhookSender(engine, allow_private=True, poll_interval=60.0, own_urls=("http://127.0.0.1:1",))
        await sender.start()
        try:
            await sender.run_once()
        finally:
            await sender.stop()
        bodies = {body["id"]: body for body in (json.loads(r.body) for r in receiver.received)}
    assert bodies[personal]["owner"] == _owner(member) and bodies[personal]["key_id"] == member.key_id
    assert bodies[service_alert]["owner"] is None
