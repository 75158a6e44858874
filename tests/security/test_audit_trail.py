"""The audit trail (issue #16): every management action, by every adapter, through ``vibexp.core.audit``, in the
transaction of the change, listed newest first over REST, never holding a plaintext key."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dashboard.pages import PASSWORD, csrf_token, make_person, sign_in
from helpers.factories import TEST_ACTOR, Account, make_account
from integration.test_cli import vibexp
from vibexp.core.audit import service as audit
from vibexp.core.audit.models import AuditEvent
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.errors import InvalidInput
from vibexp.core.keys import service as keys

KEY_SHAPED = re.compile(r"vib_[0-9a-f]{64}")
UA = "audit-test/1.0"


async def _events(client: httpx.AsyncClient, account: Account, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit-events", headers=account.headers, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_key_lifecycle_over_rest_is_recorded_with_actor_address_and_agent(
    client: httpx.AsyncClient, account: Account, client_address: str
) -> None:
    headers = account.headers | {"User-Agent": UA}
    made = await client.post("/api/v1/api-keys", headers=headers, json={"name": "CI"})
    assert made.status_code == 201
    new_id, plaintext = made.json()["id"], made.json()["key"]
    rotated = await client.post(f"/api/v1/api-keys/{new_id}/rotate", headers=headers, json={})
    assert rotated.status_code == 201
    third_id = rotated.json()["id"]
    assert (await client.delete(f"/api/v1/api-keys/{third_id}", headers=headers)).status_code == 200

    response = await client.get("/api/v1/audit-events", headers=headers)
    assert response.status_code == 200
    body = response.json()
    events = body["items"]
    # Newest first; the tenant and its first key were made by the test set-up (the system actor).
    assert [e["action"] for e in events] == [
        "key.revoked",
        "key.rotated",
        "key.created",
        "key.created",
        "tenant.created",
    ]
    revoked, rotation, created = events[0], events[1], events[2]
    for event in (revoked, rotation, created):
        assert event["actor"] == {"type": "api_key", "id": account.key_id, "name": event["actor"]["name"]}
        assert event["actor"]["name"].startswith("test key (vib_")
        assert event["client_ip"] == client_address and event["user_agent"] == UA
    assert created["target"] == {"type": "key", "id": new_id, "name": "CI"}
    assert created["details"]["source"] == "api" and created["details"]["prefix"] == plaintext[:12]
    assert rotation["target"]["id"] == new_id and rotation["details"]["new_key_id"] == third_id
    assert rotation["details"]["grace_period_seconds"] == 0
    assert revoked["target"]["id"] == third_id
    assert events[3]["actor"]["type"] == events[4]["actor"]["type"] == "system"
    # Never a plaintext key, anywhere in the trail.
    assert not KEY_SHAPED.search(response.text) and plaintext not in response.text


async def test_filters_pagination_and_bad_input(client: httpx.AsyncClient, account: Account) -> None:
    for i in range(3):
        await client.post("/api/v1/api-keys", headers=account.headers, json={"name": f"k{i}"})
    made = await client.post("/api/v1/api-keys", headers=account.headers, json={"name": "target"})
    target_id = made.json()["id"]
    await client.delete(f"/api/v1/api-keys/{target_id}", headers=account.headers)

    only_revoked = await _events(client, account, action="key.revoked")
    assert [e["target"]["id"] for e in only_revoked] == [target_id]
    on_key = await _events(client, account, key_id=target_id)
    assert [e["action"] for e in on_key] == ["key.revoked", "key.created"]
    by_key = await _events(client, account, key_id=account.key_id)  # as actor of 5, target of its own creation
    assert len(by_key) == 6

    first = await client.get("/api/v1/audit-events", headers=account.headers, params={"limit": 4})
    second = await client.get(
        "/api/v1/audit-events", headers=account.headers, params={"limit": 4, "cursor": first.json()["next_cursor"]}
    )
    ids = [e["id"] for e in first.json()["items"] + second.json()["items"]]
    assert len(ids) == len(set(ids)) == 7 and ids == sorted(ids, reverse=True)  # the 6 and tenant.created
    assert second.json()["next_cursor"] is None

    for params in ({"action": "key.exploded"}, {"limit": 0}, {"cursor": "!!"}, {"limit": 201}):
        refused = await client.get("/api/v1/audit-events", headers=account.headers, params=params)
        assert refused.status_code == 422, params
        assert set(refused.json()["error"]) >= {"code", "message"}


async def test_another_tenants_events_are_invisible(
    client: httpx.AsyncClient, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    other = await make_account(session_factory)
    await client.post("/api/v1/api-keys", headers=other.headers, json={"name": "theirs"})
    mine = await _events(client, account)
    assert all(e["target"]["name"] != "theirs" for e in mine)
    assert [e["action"] for e in await _events(client, other)] == ["key.created", "key.created", "tenant.created"]


async def test_a_change_that_fails_records_nothing(
    session_factory: async_sessionmaker[AsyncSession], account: Account, client: httpx.AsyncClient
) -> None:
    """The event is in the change's transaction: a refused rotation (revoked key) leaves no row."""
    async with session_scope(session_factory) as session:
        new = await keys.create_key(session, tenant_id=account.tenant.id, name="gone", actor=TEST_ACTOR)
    with pytest.raises(InvalidInput):
        async with session_scope(session_factory) as session:
            key = await keys.get_key(session, key_id=new.record.id)
            await keys.revoke_key(session, key=key, actor=TEST_ACTOR)
            await keys.rotate_key(session, key=key, actor=TEST_ACTOR)  # refused: the revocation rolls back too
    assert [e["action"] for e in await _events(client, account, key_id=new.record.id)] == ["key.created"]


async def test_content_deletes_are_recorded(client: httpx.AsyncClient, account: Account) -> None:
    memory = (await client.post("/api/v1/memories", headers=account.headers, json={"content": "old fact"})).json()
    prompt = (await client.post("/api/v1/prompts", headers=account.headers, json={"name": "p", "content": "c"})).json()
    made = await client.post(
        "/api/v1/artifacts",
        headers=account.headers,
        json={"project": "docs", "slug": "readme", "title": "R", "content": "x"},
    )
    assert made.status_code == 201, made.text
    assert (await client.delete(f"/api/v1/memories/{memory['id']}", headers=account.headers)).status_code == 204
    assert (await client.delete(f"/api/v1/prompts/{prompt['id']}", headers=account.headers)).status_code == 204
    assert (await client.delete("/api/v1/artifacts/docs/readme", headers=account.headers)).status_code == 204
    events = await _events(client, account)
    deleted = {e["action"]: e["target"] for e in events if e["action"].endswith(".deleted")}
    assert deleted == {
        "memory.deleted": {"type": "memory", "id": memory["id"], "name": "old fact"},
        "prompt.deleted": {"type": "prompt", "id": prompt["id"], "name": "p"},
        "artifact.deleted": {"type": "artifact", "id": made.json()["id"], "name": "docs/readme"},
    }


async def test_dashboard_sign_ins_and_key_actions_name_the_user(
    app: FastAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(session_factory)
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        token = await csrf_token(browser)
        wrong = await browser.post("/login", data={"email": person.email, "password": "nope", "csrf_token": token})
        assert wrong.status_code == 401
        unknown = await browser.post("/login", data={"email": "who@example.com", "password": "x", "csrf_token": token})
        assert unknown.status_code == 401  # no tenant to record it for
        await sign_in(browser, person)
        page = await browser.get("/settings/api-keys")
        created = await browser.post(
            "/settings/api-keys", data={"name": "From the dashboard", "access": "full", "csrf_token": _csrf(page.text)}
        )
        assert created.status_code in (200, 303), created.text
    async with session_factory() as session:
        page_of = await audit.list_events(session, tenant_id=person.account.tenant.id)
    actions = [(e.action, e.actor_type, e.actor_name, e.client_ip) for e in page_of.items]
    assert actions[:3] == [
        ("key.created", "user", person.email, "10.9.8.7"),
        ("user.signed_in", "user", person.email, "10.9.8.7"),
        ("user.sign_in_failed", "user", person.email, "10.9.8.7"),
    ]
    assert PASSWORD not in repr([e.details for e in page_of.items])


async def test_cli_actions_name_the_cli_and_tenant_changes_keep_old_and_new(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(session_factory)
    for args in (["tenant", "update", account.tenant.name, "--rate-limit", "777"], ["key", "revoke", account.key_id]):
        ran = await asyncio.to_thread(vibexp, database_url, *args)
        assert ran.returncode == 0, ran.stderr
    async with session_factory() as session:
        events = (await audit.list_events(session, tenant_id=account.tenant.id)).items
    assert [(e.action, e.actor_type) for e in events[:2]] == [("key.revoked", "cli"), ("tenant.updated", "cli")]
    assert events[1].details == {"changes": {"rate_limit_per_hour": {"from": None, "to": 777}}}
    assert events[0].actor_name.startswith("vibexp CLI (")


async def test_retention_drops_old_events_only(
    session_factory: async_sessionmaker[AsyncSession], account: Account
) -> None:
    async with session_scope(session_factory) as session:
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.tenant_id == account.tenant.id)
            .values(at=utcnow() - timedelta(days=400))
        )
        await keys.create_key(session, tenant_id=account.tenant.id, name="recent", actor=TEST_ACTOR)
    async with session_scope(session_factory) as session:
        await session.execute(audit.expired(before=utcnow() - timedelta(days=365)))
    async with session_factory() as session:
        left = (await audit.list_events(session, tenant_id=account.tenant.id)).items
    assert [e.target_name for e in left] == ["recent"]


def test_details_never_hold_a_plaintext_key() -> None:
    from vibexp.core.audit.service import _redacted

    key = "vib_" + "ab" * 32
    assert _redacted({"note": f"found {key} in a gist", "list": [key]}) == {
        "note": "found vib_abababab… in a gist",
        "list": ["vib_abababab…"],
    }


def _csrf(html: str) -> str:
    from dashboard.pages import csrf_of

    return csrf_of(html)
