"""Key delete, the rotated key's expiry and IPv4-mapped allow-lists through a real ``vibexp serve`` (issues 25 and 26).

* ``DELETE /api-keys/{id}`` revokes an active key (still listed, as revoked); a second ``DELETE`` deletes it: off
  the list, its usage and audit history kept, still refused (401) and still raising ``retired_key_used`` when
  presented. Another account's key and a deleted key are 404.
* A rotated key's successor keeps its expiry (before: none at all); a rotation may shorten it, or lengthen it only
  within the policy and the calling key's own expiry.
* An allow-list given as ``::ffff:127.0.0.1/128`` is stored as ``127.0.0.1/32`` and lets a client at 127.0.0.1 in
  (before: accepted as IPv6, it matched no one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.api_errors import assert_error
from helpers.factories import Account, make_account
from helpers.servers import LiveServer
from vibexp.core.alerts.models import Alert
from vibexp.core.audit.models import AuditEvent
from vibexp.core.clock import utcnow
from vibexp.core.db import session_scope
from vibexp.core.keys.models import ApiKey
from vibexp.core.tenants.models import Tenant

pytestmark = pytest.mark.slow

#: The clock moves between the test's "now" and the server's.
SLACK = timedelta(minutes=1)


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(database_url).start(tmp_path_factory.mktemp("logs"), 120.0)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _mint(http: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
    created = await http.post("/api/v1/api-keys", json={"name": "lifecycle", **fields}, headers=account.headers)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def _at(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_delete_revokes_then_deletes_and_keeps_the_history(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory, rate_limit=100_000)
    key = await _mint(http, account)
    assert (await http.get("/api/v1/prompts", headers=_bearer(key["key"]))).status_code == 200  # some usage

    revoked = await http.delete(f"/api/v1/api-keys/{key['id']}", headers=account.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked" and revoked.json()["deleted_at"] is None
    listed = await http.get("/api/v1/api-keys", headers=account.headers)
    assert key["id"] in {k["id"] for k in listed.json()["items"]}  # still listed, as revoked

    deleted = await http.delete(f"/api/v1/api-keys/{key['id']}", headers=account.headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted_at"] and deleted.json()["revoked_at"] == revoked.json()["revoked_at"]
    for params in ({}, {"status": "revoked"}):
        listed = await http.get("/api/v1/api-keys", params=params, headers=account.headers)
        assert key["id"] not in {k["id"] for k in listed.json()["items"]}
    assert_error(await http.get(f"/api/v1/api-keys/{key['id']}", headers=account.headers), 404, "not_found")
    assert_error(await http.delete(f"/api/v1/api-keys/{key['id']}", headers=account.headers), 404, "not_found")

    # The audit trail keeps everything, and says who deleted it.
    events = await http.get("/api/v1/audit-events", params={"key_id": key["id"]}, headers=account.headers)
    assert events.status_code == 200, events.text
    actions = [e["action"] for e in events.json()["items"]]
    assert {"key.created", "key.revoked", "key.deleted"} <= set(actions) and actions.count("key.deleted") == 1

    # Presented again, it is refused as revoked, and the retired-key alert still fires for it.
    refused = await http.get("/api/v1/prompts", headers=_bearer(key["key"]))
    assert "revoked" in assert_error(refused, 401, "invalid_api_key")["message"]
    deadline = time.monotonic() + 30
    alert = None
    while alert is None and time.monotonic() < deadline:
        async with session_scope(db_factory) as session:
            alert = await session.scalar(
                select(Alert).where(Alert.key_id == key["id"], Alert.kind == "retired_key_used")
            )
        await asyncio.sleep(0.25)
    assert alert is not None, "no retired_key_used alert for the deleted key"
    # Its row (usage) stays.
    async with session_scope(db_factory) as session:
        row = await session.get(ApiKey, key["id"])
        assert row is not None and row.deleted_at is not None and row.request_count >= 1


async def test_another_accounts_key_is_404_whether_active_or_revoked(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    mine, theirs = await make_account(db_factory), await make_account(db_factory)
    other = await _mint(http, theirs)
    assert_error(await http.delete(f"/api/v1/api-keys/{other['id']}", headers=mine.headers), 404, "not_found")
    assert (await http.delete(f"/api/v1/api-keys/{other['id']}", headers=theirs.headers)).json()["status"] == "revoked"
    assert_error(await http.delete(f"/api/v1/api-keys/{other['id']}", headers=mine.headers), 404, "not_found")
    listed = await http.get("/api/v1/api-keys", params={"status": "revoked"}, headers=theirs.headers)
    assert other["id"] in {k["id"] for k in listed.json()["items"]}  # untouched
    for bad in ("not-an-id", "0" * 36):
        assert_error(await http.delete(f"/api/v1/api-keys/{bad}", headers=mine.headers), 404, "not_found")


async def test_a_read_only_key_cannot_delete(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory)
    reader = await _mint(http, account, scopes=["read"])
    target = await _mint(http, account)
    await http.delete(f"/api/v1/api-keys/{target['id']}", headers=account.headers)  # revoked
    refused = await http.delete(f"/api/v1/api-keys/{target['id']}", headers=_bearer(reader["key"]))
    assert_error(refused, 403, "insufficient_scope")
    listed = await http.get("/api/v1/api-keys", params={"status": "revoked"}, headers=account.headers)
    assert target["id"] in {k["id"] for k in listed.json()["items"]}  # nothing deleted


@pytest.mark.parametrize("days", [1, 7])
async def test_the_successor_keeps_the_old_keys_expiry(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession], days: int
) -> None:
    account = await make_account(db_factory)
    expires = (utcnow() + timedelta(days=days)).replace(microsecond=0)
    old = await _mint(http, account, expires_at=expires.isoformat())
    for body in ({}, {"grace_period_seconds": 600}):
        rotated = await http.post(f"/api/v1/api-keys/{old['id']}/rotate", json=body, headers=account.headers)
        assert rotated.status_code == 201, rotated.text
        assert _at(rotated.json()["expires_at"]) == expires  # before: None, a key that never expires
        old = rotated.json()


async def test_a_rotation_may_shorten_the_expiry_and_lengthen_it_only_within_the_rules(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory)
    in_a_week = (utcnow() + timedelta(days=7)).replace(microsecond=0)
    # A key that expires in two days (the caller) rotates a key of a week: the successor is capped at two days.
    caller = await _mint(http, account, expires_at=(utcnow() + timedelta(days=2)).replace(microsecond=0).isoformat())
    weekly = await _mint(http, account, expires_at=in_a_week.isoformat())
    capped = await http.post(f"/api/v1/api-keys/{weekly['id']}/rotate", json={}, headers=_bearer(caller["key"]))
    assert capped.status_code == 201, capped.text
    assert _at(capped.json()["expires_at"]) == _at(caller["expires_at"])
    # Later than the caller's own expiry: refused, nothing rotated.
    later = (utcnow() + timedelta(days=5)).isoformat()
    target = await _mint(http, account, expires_at=in_a_week.isoformat())
    refused = await http.post(
        f"/api/v1/api-keys/{target['id']}/rotate", json={"expires_at": later}, headers=_bearer(caller["key"])
    )
    assert_error(refused, 403, "insufficient_scope")
    assert (await http.get(f"/api/v1/api-keys/{target['id']}", headers=account.headers)).json()["status"] == "active"
    # Shorter: fine. Longer, by a caller without an expiry and no policy: fine too.
    shorter = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    short = await http.post(
        f"/api/v1/api-keys/{target['id']}/rotate", json={"expires_at": shorter.isoformat()}, headers=account.headers
    )
    assert short.status_code == 201 and _at(short.json()["expires_at"]) == shorter
    longer = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    long = await http.post(
        f"/api/v1/api-keys/{short.json()['id']}/rotate",
        json={"expires_at": longer.isoformat()},
        headers=account.headers,
    )
    assert long.status_code == 201 and _at(long.json()["expires_at"]) == longer


async def test_the_policy_caps_the_inherited_expiry_and_refuses_a_later_one(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory)
    old = await _mint(http, account, expires_at=(utcnow() + timedelta(days=60)).isoformat())
    async with session_scope(db_factory) as session:
        tenant = await session.get(Tenant, account.tenant.id)
        assert tenant is not None
        tenant.max_key_lifetime_days = 10
    rotated = await http.post(f"/api/v1/api-keys/{old['id']}/rotate", json={}, headers=account.headers)
    assert rotated.status_code == 201, rotated.text
    assert abs(_at(rotated.json()["expires_at"]) - (utcnow() + timedelta(days=10))) < SLACK
    too_late = (utcnow() + timedelta(days=20)).isoformat()
    refused = await http.post(
        f"/api/v1/api-keys/{rotated.json()['id']}/rotate", json={"expires_at": too_late}, headers=account.headers
    )
    assert "maximum key lifetime" in assert_error(refused, 422, "invalid_input")["message"]


async def test_rotating_an_expired_key_is_refused(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory)
    old = await _mint(http, account)
    async with session_scope(db_factory) as session:
        row = await session.get(ApiKey, old["id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(minutes=1)
    refused = await http.post(f"/api/v1/api-keys/{old['id']}/rotate", json={}, headers=account.headers)
    assert "expired" in assert_error(refused, 422, "invalid_input")["message"]
    async with session_scope(db_factory) as session:
        assert list(await session.scalars(select(ApiKey.id).where(ApiKey.rotated_from_id == old["id"]))) == []


async def test_an_ipv4_mapped_allow_list_lets_the_ipv4_client_in(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(db_factory)
    fenced = await _mint(http, account, allowed_cidrs=["::ffff:127.0.0.1/128"])
    assert fenced["allowed_cidrs"] == ["127.0.0.1/32"]
    assert (await http.get("/api/v1/prompts", headers=_bearer(fenced["key"]))).status_code == 200
    elsewhere = await _mint(http, account, allowed_cidrs=["::ffff:192.0.2.0/120"])
    assert elsewhere["allowed_cidrs"] == ["192.0.2.0/24"]
    assert_error(await http.get("/api/v1/prompts", headers=_bearer(elsewhere["key"])), 403, "ip_not_allowed")


async def test_key_events_are_one_per_transition(
    http: httpx.AsyncClient, db_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Revoking twice (DELETE on an active key, then the dashboard or CLI revoking again) records one event."""
    account = await make_account(db_factory)
    key = await _mint(http, account)
    await http.delete(f"/api/v1/api-keys/{key['id']}", headers=account.headers)
    async with session_scope(db_factory) as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == key["id"])))
    assert actions.count("key.revoked") == 1 and "key.deleted" not in actions
